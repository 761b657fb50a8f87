module github.com/runyard/runyard/services/standalone

go 1.26

replace github.com/runyard/runyard/libs => ../../libs

replace (
	github.com/runyard/runyard/services/gateway => ../gateway
	github.com/runyard/runyard/services/executor => ../executor
	github.com/runyard/runyard/services/syncworker => ../syncworker
)
