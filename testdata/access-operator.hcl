# Operators and auditors of the apono/ mount: every access request and every live grant.
# People see only their own requests and the ones they may decide (access-requester.hcl,
# access-approver.hcl); seeing everyone's is this policy's right.
path "apono/audit/requests" { capabilities = ["read", "list"] }
path "apono/audit/requests/+" { capabilities = ["read"] }
path "apono/grants" { capabilities = ["list"] }
path "apono/grants/+/+" { capabilities = ["read"] }
# Ended grants (history), as JSON or format=csv: who had access to what, and when.
path "apono/history" { capabilities = ["read"] }
