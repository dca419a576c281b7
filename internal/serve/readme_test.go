//go:build unix

package serve_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's quick start is run as a reader would paste it: each block
// marked <!-- quickstart --> in order, with bash, against one real server,
// and what its "#>" lines say a command prints is checked.

// readmeSleepSlack stretches the quick start's sleeps (which give a
// background client time to connect) for a loaded machine running -race.
const readmeSleepSlack = 3

// readmeCommand is one command of a block and the output documented for it.
type readmeCommand struct {
	text       string
	background bool     // ends with &: its output may come later in the block
	want       []string // the "#>" lines; "…" stands for anything
}

var (
	quickstartBlock = regexp.MustCompile("(?s)<!-- quickstart -->\n```sh\n(.*?)\n```")
	sleepCommand    = regexp.MustCompile(`(?m)^sleep ([0-9.]+)`)
	segmentMarker   = regexp.MustCompile(`\n@@(\d+)@@\n`)
)

func TestReadmeQuickStart(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(readme, []byte("\n")); n > 250 {
		t.Errorf("README.md has %d lines, more than 250: move detail into docs/", n)
	}
	blocks := quickstartBlock.FindAllSubmatch(readme, -1)
	if len(blocks) < 3 {
		t.Fatalf("README.md has %d quick start blocks, want the walk-through", len(blocks))
	}
	s := startServer(t, t.TempDir(), "--memory")
	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(announceBinary(t), filepath.Join(work, "bin", "announce")); err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		cmds := parseReadmeBlock(string(b[1]))
		out := runReadmeBlock(t, s, work, cmds)
		checkReadmeBlock(t, i+1, cmds, out)
	}
}

func parseReadmeBlock(block string) []readmeCommand {
	var cmds []readmeCommand
	lines := strings.Split(block, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, "#> "):
			if len(cmds) > 0 {
				cmds[len(cmds)-1].want = append(cmds[len(cmds)-1].want, strings.TrimPrefix(line, "#> "))
			}
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
		default:
			text := line
			for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
				i++
				text += "\n" + lines[i]
			}
			code, _, _ := strings.Cut(text, " #") // the comment after a command
			cmds = append(cmds, readmeCommand{text: text, background: strings.HasSuffix(strings.TrimSpace(code), "&")})
		}
	}
	return cmds
}

// runReadmeBlock runs the block's commands in one bash, printing a marker
// before each, and returns what they wrote to standard output.
func runReadmeBlock(t *testing.T, s *server, work string, cmds []readmeCommand) string {
	t.Helper()
	var script strings.Builder
	for i, c := range cmds {
		text := strings.ReplaceAll(c.text, "localhost:8000", s.Addr)
		text = sleepCommand.ReplaceAllStringFunc(text, func(m string) string {
			d, _ := strconv.ParseFloat(strings.TrimPrefix(m, "sleep "), 64)
			return "sleep " + strconv.FormatFloat(d*readmeSleepSlack, 'f', -1, 64)
		})
		script.WriteString("printf '\\n@@" + strconv.Itoa(i) + "@@\\n'\n" + text + "\n")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = cleanEnv("ANNOUNCE_SERVER=" + s.URL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && ctx.Err() != nil {
		t.Fatalf("the block did not finish within 2 minutes:\n%s\nstdout:\n%s\nstderr:\n%s", script.String(), stdout.String(), stderr.String())
	}
	if t.Failed() || stderr.Len() > 0 {
		t.Logf("stderr of the block:\n%s", stderr.String())
	}
	return stdout.String()
}

// checkReadmeBlock checks each command's documented output: in what it
// printed, or, run in the background, in what the rest of the block printed.
func checkReadmeBlock(t *testing.T, block int, cmds []readmeCommand, out string) {
	t.Helper()
	starts := make([]int, len(cmds)+1)
	starts[len(cmds)] = len(out)
	for _, m := range segmentMarker.FindAllStringSubmatchIndex(out, -1) {
		i, _ := strconv.Atoi(out[m[2]:m[3]])
		starts[i] = m[1]
	}
	for i, c := range cmds {
		if len(c.want) == 0 {
			continue
		}
		end := len(out)
		if !c.background {
			if next := segmentMarker.FindStringIndex(out[starts[i]:]); next != nil {
				end = starts[i] + next[0]
			}
		}
		got := out[starts[i]:end]
		if !matchesDocumented(got, c.want) {
			t.Errorf("quick start block %d: %s\nprinted:\n%s\nthe README says:\n%s", block, c.text, got, strings.Join(c.want, "\n"))
		}
	}
}

// matchesDocumented reports whether got holds the documented lines in
// order, each "…" in them standing for any text.
func matchesDocumented(got string, want []string) bool {
	pos := 0
	for _, line := range want {
		for _, piece := range strings.Split(line, "…") {
			i := strings.Index(got[pos:], piece)
			if i < 0 {
				return false
			}
			pos += i + len(piece)
		}
	}
	return true
}
