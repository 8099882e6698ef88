# People who ask for access through apono access flows (mount apono/).
# List and read requests (read apono/requests mine=true shows your own).
path "apono/requests" { capabilities = ["read", "list"] }
# Ask (write apono/requests/<role>) and read a request (read apono/requests/<id>).
path "apono/requests/+" { capabilities = ["read", "update"] }
# Cancel your own request; pick up its grant once approved. The plugin checks that the
# caller is the requester.
path "apono/requests/+/cancel" { capabilities = ["update"] }
path "apono/requests/+/grant" { capabilities = ["update"] }
# Break-glass on roles that allow it (write apono/grants/<role> break_glass=true).
path "apono/grants/+" { capabilities = ["update"] }
# Extend your grant (vault lease renew), up to the role's max_ttl.
path "sys/leases/renew" { capabilities = ["update"] }
