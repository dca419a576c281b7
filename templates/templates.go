// Package templates embeds the server-rendered HTML pages.
package templates

import "embed"

// FS holds the page templates.
//
//go:embed *.html
var FS embed.FS
