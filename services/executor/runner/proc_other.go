//go:build !unix

package runner

import "os/exec"

// Without process groups only the direct child can be killed; WaitDelay still keeps a
// surviving grandchild from hanging the attempt.
func setProcessGroup(*exec.Cmd) {}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
