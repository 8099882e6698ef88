package kubernetes

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	"gopkg.in/yaml.v3"
)

// Helm is not run here (no cluster, no helm binary): these tests check what can be checked
// without them. The values files parse as YAML; every key they set is one the chart's own
// values.yaml has, with the type its values.schema.json asks for (the checks `helm lint`
// and `helm install` make with the schema); the plugin directory of the server config is
// the volume the init container fills; and the server config parses with the HCL parser
// Vault and OpenBao read it with.

// chart is a values file of ours and the chart it is for, pinned in testdata/.
type chart struct {
	values  string // our values file
	fixture string // testdata/<chart>-<version>: the chart's values.yaml and values.schema.json
	openbao bool
}

var charts = []chart{
	{values: "vault-values.yaml", fixture: "testdata/vault-helm-0.34.1"},
	{values: "openbao-values.yaml", fixture: "testdata/openbao-helm-0.29.2", openbao: true},
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(v) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return v
}

func readSchema(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// schemaErrors checks v against a JSON schema made, as both charts' are, of "type",
// "properties" and "items" only (keywords it does not know are reported, so a chart
// update that starts using one fails here instead of passing unchecked).
func schemaErrors(path string, v any, s map[string]any) []string {
	var errs []string
	for k := range s {
		switch k {
		case "type", "properties", "items", "description", "default", "$schema":
		default:
			errs = append(errs, fmt.Sprintf("%s: schema keyword %q is not checked here", path, k))
		}
	}
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, fmt.Sprint(x))
			}
		}
		if !hasType(v, types) {
			errs = append(errs, fmt.Sprintf("%s: %T is not of type %v", path, v, types))
			return errs
		}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		if m, ok := v.(map[string]any); ok {
			for k, sub := range props {
				if x, ok := m[k]; ok {
					errs = append(errs, schemaErrors(path+"."+k, x, sub.(map[string]any))...)
				}
			}
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		if l, ok := v.([]any); ok {
			for i, x := range l {
				errs = append(errs, schemaErrors(fmt.Sprintf("%s[%d]", path, i), x, items)...)
			}
		}
	}
	return errs
}

func hasType(v any, types []string) bool {
	for _, t := range types {
		switch t {
		case "null":
			if v == nil {
				return true
			}
		case "object":
			if _, ok := v.(map[string]any); ok {
				return true
			}
		case "array":
			if _, ok := v.([]any); ok {
				return true
			}
		case "string":
			if _, ok := v.(string); ok {
				return true
			}
		case "boolean":
			if _, ok := v.(bool); ok {
				return true
			}
		case "integer":
			if _, ok := v.(int); ok {
				return true
			}
		case "number":
			switch v.(type) {
			case int, float64:
				return true
			}
		}
	}
	return false
}

// unknownKeys returns the keys of ours that the chart's default values do not have.
// Under a key whose default is not a map with keys (a list, null, a string, {}), what
// goes there is free-form (a pod spec's volumes, the environment) and is not walked.
func unknownKeys(path string, ours, chart map[string]any) []string {
	var out []string
	for k, v := range ours {
		d, ok := chart[k]
		if !ok {
			out = append(out, path+k)
			continue
		}
		sub, ok := v.(map[string]any)
		dsub, dok := d.(map[string]any)
		if ok && dok && len(dsub) > 0 {
			out = append(out, unknownKeys(path+k+".", sub, dsub)...)
		}
	}
	sort.Strings(out)
	return out
}

func TestValuesFollowTheChartSchema(t *testing.T) {
	for _, c := range charts {
		t.Run(c.values, func(t *testing.T) {
			ours := readYAML(t, c.values)
			schema := readSchema(t, filepath.Join(c.fixture, "values.schema.json"))
			for _, e := range schemaErrors("", ours, schema) {
				t.Error(e)
			}
			// The chart's own defaults pass the same check, or the check is wrong.
			for _, e := range schemaErrors("(chart default)", readYAML(t, filepath.Join(c.fixture, "values.yaml")), schema) {
				t.Error(e)
			}
		})
	}
}

func TestValuesSetOnlyKeysTheChartHas(t *testing.T) {
	for _, c := range charts {
		t.Run(c.values, func(t *testing.T) {
			for _, k := range unknownKeys("", readYAML(t, c.values), readYAML(t, filepath.Join(c.fixture, "values.yaml"))) {
				t.Errorf("%s sets %s, which the chart's values.yaml does not have (the chart ignores it)", c.values, k)
			}
		})
	}
}

// The checks above must fail on what they are there to catch.
func TestChecksRefuseAWrongTypeAndAnUnknownKey(t *testing.T) {
	c := charts[0]
	schema := readSchema(t, filepath.Join(c.fixture, "values.schema.json"))
	chartValues := readYAML(t, filepath.Join(c.fixture, "values.yaml"))
	bad := map[string]any{"server": map[string]any{
		"volumes":            map[string]any{"name": "plugins"}, // a map where a list goes
		"ha":                 map[string]any{"replicas": "3"},   // a string where an integer goes
		"extraInitContainer": []any{},                           // a typo
	}}
	errs := schemaErrors("", bad, schema)
	if len(errs) != 2 || !strings.Contains(strings.Join(errs, "\n"), ".server.volumes") || !strings.Contains(strings.Join(errs, "\n"), ".server.ha.replicas") {
		t.Errorf("schema check: got %q, want the volumes and replicas errors", errs)
	}
	if got := unknownKeys("", bad, chartValues); len(got) != 1 || got[0] != "server.extraInitContainer" {
		t.Errorf("unknown keys: got %q, want [server.extraInitContainer]", got)
	}
}

// at walks maps by key.
func at(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, not a map", strings.Join(keys[:i], "."), v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%s is not set", strings.Join(keys[:i+1], "."))
		}
	}
	return v
}

func list(t *testing.T, v any, keys ...string) []map[string]any {
	t.Helper()
	l, ok := at(t, v, keys...).([]any)
	if !ok {
		t.Fatalf("%s is not a list", strings.Join(keys, "."))
	}
	var out []map[string]any
	for i, x := range l {
		m, ok := x.(map[string]any)
		if !ok {
			t.Fatalf("%s[%d] is not a map", strings.Join(keys, "."), i)
		}
		out = append(out, m)
	}
	return out
}

// pluginBlock is OpenBao's declarative plugin stanza, with the fields of OpenBao 2.6.2's
// command/server/config.go PluginConfig.
type pluginBlock struct {
	Type       string   `hcl:"-"`
	Name       string   `hcl:"-"`
	Image      string   `hcl:"image"`
	Version    string   `hcl:"version"`
	BinaryName string   `hcl:"binary_name"`
	SHA256Sum  string   `hcl:"sha256sum"`
	Command    string   `hcl:"command"`
	Args       []string `hcl:"args"`
	Env        []string `hcl:"env"`
}

type serverConfig struct {
	PluginDirectory    string        `hcl:"plugin_directory"`
	PluginAutoRegister bool          `hcl:"plugin_auto_register"`
	Plugins            []pluginBlock `hcl:"-"`
	Storage            []string      `hcl:"-"` // storage types
}

func parseServerConfig(t *testing.T, text string) serverConfig {
	t.Helper()
	f, err := hcl.ParseString(text)
	if err != nil {
		t.Fatalf("the server config does not parse as HCL: %v", err)
	}
	var c serverConfig
	if err := hcl.DecodeObject(&c, f.Node); err != nil {
		t.Fatalf("decoding the server config: %v", err)
	}
	list, ok := f.Node.(*ast.ObjectList)
	if !ok {
		t.Fatalf("the server config is a %T", f.Node)
	}
	for _, item := range list.Filter("storage").Items {
		for _, k := range item.Keys {
			c.Storage = append(c.Storage, strings.Trim(k.Token.Text, `"`))
		}
	}
	for _, item := range list.Filter("plugin").Items {
		var p pluginBlock
		if err := hcl.DecodeObject(&p, item.Val); err != nil {
			t.Fatalf("a plugin block: %v", err)
		}
		if len(item.Keys) != 2 {
			t.Fatalf("a plugin block has %d labels, want type and name", len(item.Keys))
		}
		p.Type = strings.Trim(item.Keys[0].Token.Text, `"`)
		p.Name = strings.Trim(item.Keys[1].Token.Text, `"`)
		c.Plugins = append(c.Plugins, p)
	}
	return c
}

var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestThePluginDirectoryIsTheVolumeTheInitContainerFills(t *testing.T) {
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Where the image holds the binary, which the init container copies from.
	if !strings.Contains(string(dockerfile), "COPY --from=unpack /out/vault-plugin-apono /vault-plugin-apono\n") {
		t.Fatal("the Dockerfile no longer puts the binary at /vault-plugin-apono")
	}
	for _, c := range charts {
		t.Run(c.values, func(t *testing.T) {
			v := readYAML(t, c.values)
			if at(t, v, "server", "ha", "enabled") != true || at(t, v, "server", "ha", "raft", "enabled") != true {
				t.Error("server.ha.enabled and server.ha.raft.enabled must be true: the config is server.ha.raft.config")
			}
			if r := at(t, v, "server", "ha", "replicas"); r != 3 {
				t.Errorf("server.ha.replicas = %#v, want 3 (the retry_join blocks name three pods)", r)
			}

			text, ok := at(t, v, "server", "ha", "raft", "config").(string)
			if !ok {
				t.Fatal("server.ha.raft.config is not a string")
			}
			// Both charts pass the config through tpl, then sed replaces these words in it
			// with the pod's addresses: none may be in it by accident.
			if strings.Contains(text, "{{") {
				t.Error("the config holds {{, which the chart's tpl would expand")
			}
			for _, w := range []string{"HOST_IP", "POD_IP", "HOSTNAME", "API_ADDR", "TRANSIT_ADDR", "RAFT_ADDR"} {
				if strings.Contains(text, w) {
					t.Errorf("the config holds %s, which the chart's start script replaces", w)
				}
			}
			cfg := parseServerConfig(t, text)
			if len(cfg.Storage) != 1 || cfg.Storage[0] != "raft" {
				t.Errorf("storage = %v, want raft", cfg.Storage)
			}
			if cfg.PluginDirectory == "" {
				t.Fatal("the config sets no plugin_directory")
			}

			// The server container mounts the plugins volume, read-only, at plugin_directory.
			var volume string
			for _, m := range list(t, v, "server", "volumeMounts") {
				if m["mountPath"] == cfg.PluginDirectory {
					volume, _ = m["name"].(string)
					if m["readOnly"] != true {
						t.Errorf("the volumeMount at %s is not readOnly", cfg.PluginDirectory)
					}
				}
			}
			if volume == "" {
				t.Fatalf("no server.volumeMounts entry mounts plugin_directory %s", cfg.PluginDirectory)
			}
			found := false
			for _, vol := range list(t, v, "server", "volumes") {
				if vol["name"] == volume {
					found = true
					if _, ok := vol["emptyDir"].(map[string]any); !ok {
						t.Errorf("volume %s is not an emptyDir", volume)
					}
				}
			}
			if !found {
				t.Errorf("server.volumes has no volume %s", volume)
			}

			// One init container, which mounts the same volume and copies the binary there
			// after checking its sha256.
			inits := list(t, v, "server", "extraInitContainers")
			if len(inits) != 1 {
				t.Fatalf("%d init containers, want 1", len(inits))
			}
			ic := inits[0]
			if ic["name"] != "vault-plugin-apono" || ic["image"] == "" {
				t.Errorf("init container name %v, image %v", ic["name"], ic["image"])
			}
			var into string
			for _, m := range list(t, ic, "volumeMounts") {
				if m["name"] == volume {
					into, _ = m["mountPath"].(string)
				}
			}
			if into == "" {
				t.Fatalf("the init container does not mount volume %s", volume)
			}
			var sha string
			for _, e := range list(t, ic, "env") {
				if e["name"] == "PLUGIN_SHA256" {
					sha, _ = e["value"].(string)
				}
			}
			if !sha256Re.MatchString(sha) {
				t.Errorf("PLUGIN_SHA256 = %q, want 64 lower-case hex digits", sha)
			}
			args, ok := ic["args"].([]any)
			if !ok || len(args) != 1 {
				t.Fatalf("the init container's args are %v, want one script", ic["args"])
			}
			script, _ := args[0].(string)
			for _, want := range []string{
				"set -eu",
				"sha256sum /vault-plugin-apono",
				`"$PLUGIN_SHA256"`,
				"cp /vault-plugin-apono " + into + "/vault-plugin-apono.tmp",
				"mv -f " + into + "/vault-plugin-apono.tmp " + into + "/vault-plugin-apono",
				"sha256sum " + into + "/vault-plugin-apono",
			} {
				if !strings.Contains(script, want) {
					t.Errorf("the init container's script lacks %q", want)
				}
			}
			if c.openbao && strings.Contains(script, "{{") {
				t.Error("the init container holds {{, which OpenBao's chart (tpl) would expand")
			}
			if cmd := fmt.Sprint(ic["command"]); cmd != "[/bin/sh -c]" {
				t.Errorf("the init container's command is %s, want [/bin/sh -c]", cmd)
			}

			// The plugin's registration: by hand on Vault, declared in the config on OpenBao.
			if !c.openbao {
				if len(cfg.Plugins) != 0 || cfg.PluginAutoRegister {
					t.Error("the Vault config declares plugins: Vault has no plugin block")
				}
				return
			}
			if !cfg.PluginAutoRegister {
				t.Error("plugin_auto_register is not true: OpenBao would not register the declared plugin")
			}
			if len(cfg.Plugins) != 1 {
				t.Fatalf("%d plugin blocks, want 1", len(cfg.Plugins))
			}
			p := cfg.Plugins[0]
			if p.Type != "secret" || p.Name != "vault-plugin-apono" || p.Command != "vault-plugin-apono" || p.Image != "" {
				t.Errorf("plugin block %+v, want secret/vault-plugin-apono with command vault-plugin-apono", p)
			}
			if p.SHA256Sum != sha {
				t.Errorf("the plugin block's sha256sum %s is not the init container's PLUGIN_SHA256 %s", p.SHA256Sum, sha)
			}
			if _, err := hex.DecodeString(p.SHA256Sum); err != nil || len(p.SHA256Sum) != 64 {
				t.Errorf("sha256sum %q is not 64 hex digits (OpenBao refuses to start)", p.SHA256Sum)
			}
			image, _ := ic["image"].(string)
			if !strings.HasSuffix(image, ":"+p.Version) {
				t.Errorf("the plugin block's version %s is not the plugin image's tag (%s)", p.Version, image)
			}
		})
	}
}
