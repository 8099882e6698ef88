# People who ask for access through apono access flows (mount apono/).
# List and read your requests (and those you may decide): the plugin shows each person only
# what is theirs.
path "apono/requests" { capabilities = ["read", "list"] }
# Ask (write apono/requests/<role>) and read a request (read apono/requests/<id>).
path "apono/requests/+" { capabilities = ["read", "update"] }
# Ask for a bundle (several roles at once): write apono/requests/bundle/<name>.
path "apono/requests/bundle/+" { capabilities = ["update"] }
# Cancel your own request; pick up its grant once approved. The plugin checks that the
# caller is the requester.
path "apono/requests/+/cancel" { capabilities = ["update"] }
path "apono/requests/+/grant" { capabilities = ["update"] }
# Pick up at grants/<role> (so the lease sits with the role's other grants), and nothing
# else there: without request_id that path grants at once on a role with approval=none.
path "apono/grants/+" {
  capabilities        = ["update"]
  required_parameters = ["request_id"]
  allowed_parameters  = { "request_id" = [] }
}
# Break-glass, on the roles that allow it (and, with break_glass_allowed, to the people
# they name).
path "apono/break-glass/+" { capabilities = ["update"] }
# Renew your grant (vault lease renew), up to the end approved for it (a grant written
# directly: the role's max_ttl); more time needs an approved extension.
path "sys/leases/renew" { capabilities = ["update"] }
# What may be asked for (the roles and bundles) and, for one role at a time, which resources it can
# grant; the caller's own live grants.
path "apono/my/roles" { capabilities = ["read"] }
path "apono/my/bundles" { capabilities = ["read"] }
path "apono/resources" {
  capabilities        = ["read"]
  required_parameters = ["role"]
}
path "apono/my/grants" { capabilities = ["read", "list"] }
