package tmpdeps

import (
	_ "github.com/golang-jwt/jwt/v5"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/sync/singleflight"
	_ "modernc.org/sqlite"
)
