# Optional, on top of apono-identity.hcl: lets the orphan sweeper remove the identity
# entities that versions of the plugin before grant entities left behind (each used
# grant's first login made an entity_xxxxxxxx with an alias named after the grant user).
# The sweeper deletes an entity only when its one alias is on the configured userpass
# mount, is named like this mount's grant users, that user no longer exists and no grant
# explains it, and the entity has a Vault-made name and no groups or policies. Reading and
# deleting entities by ID cannot be narrowed by path: grant this only for the cleanup and
# take it away afterwards if that is too broad for you.
path "identity/entity-alias/id" { capabilities = ["list"] }
path "identity/entity/id/*" { capabilities = ["read", "delete"] }
