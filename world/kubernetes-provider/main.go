// Command pulumi-resource-kubernetes serves the Kubernetes provider built from the published
// github.com/pulumi/pulumi-kubernetes/provider/v4 module.
//
// The upstream main (cmd/pulumi-resource-kubernetes) embeds schema-embed.json and
// terraform-mapping-embed.json, which are generated at release time and not in the module, so
// it cannot be built from the module. This main embeds the module's committed schema.json and
// terraform-mapping.json instead; world/build.sh copies them here before it builds (they are
// not committed to this repository).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema.json
var pulumiSchema []byte

//go:embed terraform-mapping.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
