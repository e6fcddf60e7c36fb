package gateway_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Every method of the public services has an HTTP binding, and the committed OpenAPI document
// describes each of its routes (make generate-check keeps the document in step with the proto).
func TestEveryMethodHasADocumentedRoute(t *testing.T) {
	data, err := os.ReadFile("../../api/openapi/churn.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("api/openapi/churn.swagger.json: %v", err)
	}
	files := []protoreflect.FileDescriptor{churnv1.File_churn_v1_scoring_proto, churnv1.File_churn_v1_models_proto, churnv1.File_churn_v1_outcomes_proto}
	n := 0
	for _, f := range files {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					t.Errorf("%s has no google.api.http annotation", m.FullName())
					continue
				}
				for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					method, path := verbAndPath(r)
					path = openAPIPath(path)
					if _, ok := doc.Paths[path][method]; !ok {
						t.Errorf("%s: %s %s is not in the OpenAPI document", m.FullName(), strings.ToUpper(method), path)
					}
					n++
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("%d routes checked, want every method's", n)
	}
}

func verbAndPath(r *annotations.HttpRule) (string, string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return "get", p.Get
	case *annotations.HttpRule_Post:
		return "post", p.Post
	case *annotations.HttpRule_Delete:
		return "delete", p.Delete
	case *annotations.HttpRule_Put:
		return "put", p.Put
	case *annotations.HttpRule_Patch:
		return "patch", p.Patch
	}
	return "", ""
}

var pathParam = regexp.MustCompile(`\{([a-z0-9_]+)(=[^}]*)?\}`)

// openAPIPath writes a path template as the OpenAPI document does: {customer_id=**} is
// {customerId}, the parameter by its JSON name.
func openAPIPath(path string) string {
	return pathParam.ReplaceAllStringFunc(path, func(p string) string {
		name := pathParam.FindStringSubmatch(p)[1]
		parts := strings.Split(name, "_")
		for i := 1; i < len(parts); i++ {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
		return "{" + strings.Join(parts, "") + "}"
	})
}
