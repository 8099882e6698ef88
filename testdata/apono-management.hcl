# Basic system privileges
path "sys/health" { capabilities = ["read"] }
path "sys/mounts" { capabilities = ["read"] }
path "sys/capabilities-self" { capabilities = ["update"] }
# Manage user creation
path "auth/userpass/users" { capabilities = ["list"] }
path "auth/userpass/users/*" { capabilities = ["create","update","read","delete"] }
# ACL-policies apono-* management
path "sys/policies/acl/apono-*" { capabilities = ["create","update","read","delete","list"] }
# KV v2 (for listing resources)
path "kv/metadata/*" { capabilities = ["read","list"] }
# Transit (for listing resources)
path "transit/keys" { capabilities = ["list"] }
