package swarm_test

import (
	"encoding/json"
	"net/http"
)

func writeJSON(w http.ResponseWriter, v any) { json.NewEncoder(w).Encode(v) }
