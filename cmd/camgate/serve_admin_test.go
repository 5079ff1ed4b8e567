package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"

	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/router"
)

// TestAdminServicesWiring checks that serve hands the guard and the
// router client to the admin API as typed fields (issue #13, item 12):
// renaming guard.Policy.Bans or router.Client.Status now breaks this
// build instead of quietly turning /api/v1/bans or /api/v1/router into
// "not supported".
func TestAdminServicesWiring(t *testing.T) {
	dir := t.TempDir()
	p, err := guard.NewPolicy(guard.Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	svc := &services{guard: p, router: router.New(router.Config{StateDir: dir})}
	c := svc.adminConfig(nil, nil)
	if c.Guard == nil || c.Bans == nil || c.Router == nil {
		t.Fatalf("got Guard %v, Bans %v, Router %v; want all three wired", c.Guard, c.Bans, c.Router)
	}
	// Without the services the fields stay nil (not a nil pointer in a
	// non-nil interface, which the API would take for a running service).
	c = (&services{}).adminConfig(nil, nil)
	if c.Guard != nil || c.Bans != nil || c.Router != nil {
		t.Fatalf("got Guard %v, Bans %v, Router %v; want none", c.Guard, c.Bans, c.Router)
	}
}

// TestNoReflectionBetweenPackages keeps the admin API and the site free of
// string registries and method lookups by name (STYLE.md: small
// interfaces declared where they are used, wired with typed fields).
func TestNoReflectionBetweenPackages(t *testing.T) {
	for _, dir := range []string{"../../internal/admin", "../../internal/site"} {
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SelectorExpr:
					if n.Sel.Name == "MethodByName" {
						t.Errorf("%s: reflect MethodByName; declare an interface and a typed field instead", fset.Position(n.Pos()))
					}
				case *ast.FuncDecl:
					if n.Recv != nil && (n.Name.Name == "Register" || n.Name.Name == "Lookup") {
						t.Errorf("%s: %s is a string registry; wire a typed field instead", fset.Position(n.Pos()), n.Name.Name)
					}
				}
				return true
			})
		}
	}
}
