package tray

import (
	"testing"

	"github.com/potluck-gpu/potluck/nodestate"
)

func TestProvisioningLabel(t *testing.T) {
	for _, tt := range []struct {
		p    nodestate.Provisioning
		want string
	}{
		{nodestate.Provisioning{Version: "0.7.0"}, "Getting llama.cpp 0.7.0…"},
		{nodestate.Provisioning{Version: "0.7.0", Backend: "vulkan", Total: 48 << 20, Completed: 12 << 20}, "Getting llama.cpp 0.7.0 (Vulkan, 48.0 MiB)… 25%"},
		{nodestate.Provisioning{Version: "0.7.0", Backend: "cuda", Total: 48 << 20, Completed: 48 << 20}, "Getting llama.cpp 0.7.0 (CUDA, 48.0 MiB)…"},
	} {
		if got := provisioningLabel(tt.p); got != tt.want {
			t.Errorf("Label(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}
