package tests

import "strings"

func containsLine(text, sub string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
