module github.com/runyard/runyard/services/syncworker

go 1.26

replace github.com/runyard/runyard/libs => ../../libs
