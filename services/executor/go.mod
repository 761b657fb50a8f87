module github.com/runyard/runyard/services/executor

go 1.26

replace github.com/runyard/runyard/libs => ../../libs
