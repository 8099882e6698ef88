package backend

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

// CSV answers. Every CSV the plugin writes goes through csvResponse, so that no cell of
// it is a live formula in the spreadsheet an auditor opens it in.

// csvFormulaStarts are the first characters a spreadsheet (Excel, LibreOffice, Google
// Sheets) reads a cell as a formula by, or strips before doing so (OWASP "CSV Injection").
const csvFormulaStarts = "=+-@\t\r"

// csvCell neutralises one cell: a value starting with a formula character gets a leading
// single quote, so that the spreadsheet shows it as text ("'=HYPERLINK(...)") instead of
// evaluating it. A value that starts with a quote gets one more, so that the rule undoes
// without doubt: a cell that starts with ' is the true value after its first character.
// Only the CSV is changed; JSON answers keep the true value.
func csvCell(v string) string {
	if v != "" && (strings.IndexByte(csvFormulaStarts, v[0]) >= 0 || v[0] == '\'') {
		return "'" + v
	}
	return v
}

// csvResponse is a raw text/csv answer of a header row and rows, each cell neutralised
// by csvCell.
func csvResponse(columns []string, rows [][]string) (*logical.Response, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	write := func(row []string) error {
		safe := make([]string, len(row))
		for i, v := range row {
			safe[i] = csvCell(v)
		}
		return w.Write(safe)
	}
	if err := write(columns); err != nil {
		return nil, err
	}
	for _, r := range rows {
		if err := write(r); err != nil {
			return nil, err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType: "text/csv; charset=utf-8",
		logical.HTTPRawBody:     buf.Bytes(),
		logical.HTTPStatusCode:  http.StatusOK,
		// Who had access to what: not for a shared cache.
		logical.HTTPCacheControlHeader: "no-store",
	}}, nil
}
