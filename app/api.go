package app

import (
	"context"
	"strings"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/server"
)

// apiNode adapts the Node to the node API the server defines.
type apiNode struct{ n *Node }

var _ server.Node = apiNode{}

func (a apiNode) Status() any                                  { return a.n.Status() }
func (a apiNode) Peers() any                                   { return a.n.Peers() }
func (a apiNode) Plan(model string) any                        { return a.n.Plan(model) }
func (a apiNode) Join(ctx context.Context, token string) error { return a.n.Join(ctx, token) }
func (a apiNode) Leave(ctx context.Context) error              { return a.n.Leave(ctx) }
func (a apiNode) InviteToken() (string, error)                 { return a.n.InviteToken() }
func (a apiNode) Counters() server.Counters                    { return a.n.counters() }
func (a apiNode) Members() any                                 { return a.n.Members() }
func (a apiNode) Library() any                                 { return a.n.Library() }
func (a apiNode) Usage() any                                   { return a.n.Usage() }
func (a apiNode) Quit()                                        { a.n.Quit() }

// Pull holds back the steps before the first byte, so that a reference
// that does not exist is still an HTTP error, not a line in a stream.
func (a apiNode) Pull(ctx context.Context, ref string, progress func(any)) (any, error) {
	var f func(hub.Progress)
	if progress != nil {
		var held []hub.Progress
		started := false
		f = func(p hub.Progress) {
			if !started && p.Total == 0 && p.Status != "success" {
				held = append(held, p)
				return
			}
			if !started {
				started = true
				for _, h := range held {
					progress(h)
				}
			}
			progress(p)
		}
	}
	return a.n.Pull(ctx, ref, f)
}

// Serve sets the model's embeddings first, when asked: the model then
// starts, or restarts, as chosen.
func (a apiNode) Serve(ctx context.Context, model string, embeddings *bool) error {
	if embeddings != nil && strings.TrimSpace(model) != "" {
		if err := a.n.SetEmbeddings(ctx, model, *embeddings); err != nil {
			return err
		}
	}
	return a.n.Serve(ctx, model)
}

func (a apiNode) SetDevices(ctx context.Context, d []string) error {
	return a.n.SetDevices(ctx, d)
}

func (a apiNode) SetLendTo(ctx context.Context, who []string) error {
	return a.n.SetLendTo(ctx, who)
}

func (a apiNode) RemoveMember(ctx context.Context, who string) (any, error) {
	return a.n.RemoveMember(ctx, who)
}

func (a apiNode) Share(ctx context.Context, mode, memory string) error {
	m, ok := ParseShareMode(mode)
	if !ok {
		return &InputError{Field: "mode", Msg: `want "off", "worker" or "server"`, Value: mode}
	}
	mem, err := parseMemory(memory)
	if err != nil {
		return err
	}
	return a.n.Share(ctx, m, mem)
}
