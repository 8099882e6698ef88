# Optional additions to the apono-management policy (testdata/apono-management.hcl).
# apono/health reports each as ok or missing; without them the plugin works as before.

# Honest end times: a lease ends with the token that asked for it, so the plugin looks
# up the caller's token (by its accessor) and never promises a grant past its end.
path "auth/token/lookup-accessor" { capabilities = ["update"] }

# The plugin needs nothing of the default policy: with this rule its token renews itself
# when its AppRole has token_no_default_policy=true, which the README recommends (the
# default policy is templated, so Vault parses it again on every call the plugin makes).
path "auth/token/renew-self" { capabilities = ["update"] }

# Grant identities: each grant user gets an identity entity named after the grant (with
# metadata saying for whom and why), and an alias that makes its logins use it; revoke,
# rollback and the sweeper delete both. Without these, every grant user's first login
# makes an entity that nothing removes.
path "identity/entity/name/apono-*" { capabilities = ["create", "update", "read", "delete"] }
path "identity/entity/name" { capabilities = ["list"] }
path "identity/entity-alias" {
  capabilities = ["create", "update"]
  # Only aliases named like grant users.
  allowed_parameters = {
    "name"           = ["apono-*"]
    "canonical_id"   = []
    "mount_accessor" = []
  }
}

# On behalf (requests/<role> with for=<entity name>): the plugin reads the named entity to
# learn that it exists and its ID. Only read; the rule above, being longer, still governs
# the plugin's own apono-* entities. Without this rule, for= fails with a message naming it.
path "identity/entity/name/*" { capabilities = ["read"] }
