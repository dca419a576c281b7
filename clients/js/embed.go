// Package clientjs embeds the browser client, announce.js, so the server
// serves the version it was built with. The module announce.mjs is the one
// source: Module serves it with its comment lines and indentation taken out,
// Classic wraps the same text as a script that defines a global announce.
package clientjs

import (
	"bytes"
	_ "embed"
)

//go:embed announce.mjs
var source []byte

//go:embed announce.d.ts
var types []byte

var module, classic = build(source)

// Module is the ES module served as /announce.mjs.
func Module() []byte { return module }

// Classic is the classic script served as /announce.js: no module syntax,
// one global, announce.
func Classic() []byte { return classic }

// Types are the TypeScript declarations served as /announce.d.ts.
func Types() []byte { return types }

// build drops the source's whole-line comments, blank lines and indentation
// (the source has no multi-line strings, so no line's meaning changes), and
// makes the classic script by replacing the module's export lines.
func build(src []byte) (mod, script []byte) {
	var body, exports bytes.Buffer
	for line := range bytes.Lines(src) {
		t := bytes.TrimSpace(line)
		switch {
		case len(t) == 0, bytes.HasPrefix(t, []byte("//")):
		case bytes.HasPrefix(t, []byte("export ")):
			exports.Write(t)
			exports.WriteByte('\n')
		default:
			body.Write(t)
			body.WriteByte('\n')
		}
	}
	mod = append(append([]byte(nil), body.Bytes()...), exports.Bytes()...)
	script = append([]byte("(function () {\n\"use strict\";\n"), body.Bytes()...)
	script = append(script, "(typeof self != \"undefined\" ? self : globalThis).announce = announce;\n})();\n"...)
	return mod, script
}
