package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs enforces exactly one package doc comment per package, in
// the non-test files of every directory under cmd/ and internal/.
func TestPackageDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, top := range []string{"cmd", "internal"} {
		filepath.WalkDir(filepath.Join(root, top), func(dir string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() || strings.Contains(dir, "testdata") || strings.Contains(dir, "node_modules") {
				return nil
			}
			fset := token.NewFileSet()
			files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
			var docs, n int
			for _, f := range files {
				if strings.HasSuffix(f, "_test.go") {
					continue
				}
				af, err := parser.ParseFile(fset, f, nil, parser.PackageClauseOnly|parser.ParseComments)
				if err != nil {
					t.Errorf("%s: %v", f, err)
					continue
				}
				n++
				if af.Doc != nil {
					docs++
				}
			}
			if n > 0 && docs != 1 {
				t.Errorf("%s: %d package doc comments, want exactly 1", dir, docs)
			}
			return nil
		})
	}
}
