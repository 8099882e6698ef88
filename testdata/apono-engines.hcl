# Additions to apono-management for database, PKI and SSH roles (docs/operations.md),
# for engines mounted at database/, pki/ and ssh/ and userpass at userpass/.
# Database: apono/sync lists dynamic and static roles.
path "database/roles" { capabilities = ["list"] }
path "database/static-roles" { capabilities = ["list"] }
# PKI: apono/sync lists the roles; a grant reads its role's max_ttl to bound not_after.
path "pki/roles" { capabilities = ["list"] }
path "pki/roles/*" { capabilities = ["read"] }
# SSH: apono/sync lists the roles; a grant reads its role's ttl and max_ttl.
path "ssh/roles" { capabilities = ["list"] }
path "ssh/roles/*" { capabilities = ["read"] }
# Required for every type but KV and Transit: a grant's end revokes its user's logins
# with their child leases (the database users they read).
path "sys/leases/revoke-prefix/auth/userpass/login/*" { capabilities = ["sudo", "update"] }
