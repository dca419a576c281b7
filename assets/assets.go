// Package assets embeds the demo page's scripts and styles, so the server
// works offline with no CDN.
package assets

import "embed"

// FS holds the static files served under /assets/.
//
//go:embed *.js *.css vendor
var FS embed.FS
