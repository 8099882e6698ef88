# People who approve or deny access requests (mount apono/). Whether a person may approve
# a given request is decided by the plugin from the request's approvers and the person's
# identity groups; this policy only lets them ask.
path "apono/requests" { capabilities = ["read", "list"] }
path "apono/requests/+" { capabilities = ["read"] }
path "apono/requests/+/approve" { capabilities = ["update"] }
path "apono/requests/+/deny" { capabilities = ["update"] }
