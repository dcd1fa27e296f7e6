package hw

import (
	"io"
	"log/slog"
	"runtime"
)

func runtimeArch() string { return runtime.GOARCH }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
