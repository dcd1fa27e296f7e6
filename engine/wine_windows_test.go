package engine

import "golang.org/x/sys/windows"

// underWine says whether this Windows program runs under Wine, whose
// ntdll has wine_get_version. There, a sleeping Go program is charged a
// few percent of CPU time, which reads as work.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}
