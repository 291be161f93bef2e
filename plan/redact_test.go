package plan

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/redact"
	"github.com/patchbay/patchbay/templates"
)

// plan and impact follow the one redaction policy, as resolve and explain
// do: datastore values and secret names are masked in the bindings'
// before and after and inside the rendered files' diffs, in text and JSON.
func TestPlanAndImpactMaskSecrets(t *testing.T) {
	const password, url = "hunter2xyz", "postgres://app:s3cr3t-pw@db/app"
	secrets := []string{password, "s3cr3t-pw"}
	ds := []binding.Datastore{
		{Federation: "default", Key: "DB_URL", Value: url},
		{Federation: "default", Key: "DB_PASSWORD", Value: password},
		{Federation: "default", Key: "API_URL", Value: "http://ops:s3cr3t-pw@api.example"},
	}
	www := strings.Replace(wwwDoc, "requires: {", `requires: {DB: "{DB_URL}", DB_PASS: "{DB_PASSWORD}", `, 1)

	snap := fixture(t)
	published := compute(t, snap, Publish(snap, parse(t, www), ds))
	after := Publish(snap, parse(t, www), ds)
	impact, err := Impact(context.Background(), after, func(in binding.Instance) bool { return in.Node == "n1" }, WithRenderer(templates.NewRenderer()))
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Plan{"plan": published, "impact": impact} {
		run := findRun(p, "n3", "www")
		if run == nil || len(run.Templates) != 1 || !strings.Contains(run.Templates[0].Diff, redact.Masked) {
			t.Fatalf("%s: www on n3 %+v, want an env file diff with masked values", name, run)
		}
		var text strings.Builder
		if err := p.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(p)
		for _, s := range secrets {
			if strings.Contains(text.String(), s) || strings.Contains(string(js), s) {
				t.Errorf("%s shows the secret %q:\n%s\n%s", name, s, text.String(), js)
			}
		}
	}
	if v := findVar(published, "www", "DB"); v == nil || v.After != redact.Masked {
		t.Errorf("plan: www DB %+v, want its datastore value masked", v)
	}
}
