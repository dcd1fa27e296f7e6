//go:build !windows

package engine

func underWine() bool { return false }
