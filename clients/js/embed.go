// Package clientjs embeds the browser client, announce.js, so the server
// serves the version it was built with. Its source is two ES modules:
// transport.mjs (the network) and announce.mjs (the API), which imports the
// first. Module joins them into one file: the import line and
// transport.mjs's export line go, as do whole-line comments, blank lines and
// indentation. Classic wraps the same text as a script defining the global
// announce.
package clientjs

import (
	"bytes"
	_ "embed"
)

var (
	//go:embed transport.mjs
	transportSource []byte
	//go:embed announce.mjs
	announceSource []byte
	//go:embed announce.d.ts
	types []byte
)

var module, classic = build(transportSource, announceSource)

// Module is the ES module served as /announce.mjs.
func Module() []byte { return module }

// Classic is the classic script served as /announce.js: no module syntax,
// one global, announce.
func Classic() []byte { return classic }

// Types are the TypeScript declarations served as /announce.d.ts.
func Types() []byte { return types }

// build joins the sources, the last one's exports at the end of the module.
// The sources keep each import and export on one line and have no string
// or template literal that spans lines, so taking lines out and trimming
// them changes no meaning.
func build(sources ...[]byte) (mod, script []byte) {
	var body, exports bytes.Buffer
	for i, src := range sources {
		last := i == len(sources)-1
		for line := range bytes.Lines(src) {
			t := bytes.TrimSpace(line)
			switch {
			case len(t) == 0, bytes.HasPrefix(t, []byte("//")), bytes.HasPrefix(t, []byte("import ")):
			case bytes.HasPrefix(t, []byte("export ")):
				if last {
					exports.Write(t)
					exports.WriteByte('\n')
				}
			default:
				body.Write(t)
				body.WriteByte('\n')
			}
		}
	}
	mod = append(append([]byte(nil), body.Bytes()...), exports.Bytes()...)
	script = append([]byte("(function () {\n\"use strict\";\n"), body.Bytes()...)
	script = append(script, "(typeof self != \"undefined\" ? self : globalThis).announce = announce;\n})();\n"...)
	return mod, script
}
