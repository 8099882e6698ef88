package backend

import "github.com/hashicorp/vault/sdk/logical"

// errorOrBadRequest returns err if set, else a 400 with msg.
func errorOrBadRequest(err error, msg string) (*logical.Response, error) {
	if err != nil {
		return nil, err
	}
	return logical.ErrorResponse(msg), nil
}
