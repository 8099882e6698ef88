// Package kubernetes holds no code: deploy/kubernetes/ is the Helm values files, for the
// official Vault chart (hashicorp/vault) and OpenBao chart (openbao/openbao), and the
// Dockerfile of the plugin image their init containers copy the binary from
// (docs/kubernetes.md). Its tests parse the values files and check them against the
// charts' own values.yaml and values.schema.json, pinned in testdata/ at the chart
// versions the docs name, and the server configuration inside them with the HCL parser
// Vault and OpenBao use.
package kubernetes
