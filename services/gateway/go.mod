module github.com/runyard/runyard/services/gateway

go 1.26

replace github.com/runyard/runyard/libs => ../../libs
