package service

import (
	_ "embed"
	"strings"
	"sync"
)

// commonPasswordList holds the 10,000 most frequent passwords of the
// zxcvbn frequency list (lower-cased, most common first), taken from the
// npm package @zxcvbn-ts/language-common 4.1.3 (src/passwords.json), MIT
// licensed: see commonpasswords.LICENSE.
//
//go:embed commonpasswords.txt
var commonPasswordList string

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 10000)
	for _, p := range strings.Split(commonPasswordList, "\n") {
		if p = strings.TrimSpace(p); p != "" {
			m[p] = struct{}{}
		}
	}
	return m
})

// isCommonPassword reports whether p (case-insensitively) is one of the
// passwords attackers try first.
func isCommonPassword(p string) bool {
	_, ok := commonPasswords()[strings.ToLower(p)]
	return ok
}
