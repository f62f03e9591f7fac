package gateway

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
	"example.com/filebatch/upstream"
)

// jsonStringCases are strings whose escaping must match encoding/json.
var jsonStringCases = []struct {
	name string
	s    string
}{
	{"empty", ""},
	{"plain", "vsfb_abc123"},
	{"quote and backslash", `a"b\c`},
	{"short escapes", "\b\f\n\r\t"},
	{"control characters", "\x00\x01\x07\x0b\x0e\x1b\x1f"},
	{"delete is not escaped", "a\x7fb"},
	{"html characters", "<script>&amp;</script>"},
	{"two-byte rune", "café"},
	{"three-byte rune", "€ and 日本"},
	{"four-byte rune", "emoji 😀"},
	{"line and paragraph separators", "a\u2028b\u2029c"},
	{"replacement character itself", "\ufffd"},
	{"lone continuation byte", "a\x80b"},
	{"invalid leading byte", "\xffx"},
	{"truncated three-byte rune", "a\xe2\x82"},
	{"overlong encoding", "\xc0\xaf"},
	{"encoded surrogate", "\xed\xa0\x80"},
	{"rune beyond U+10FFFF", "\xf4\x90\x80\x80"},
	{"invalid byte between escapes", "\n\xfe\""},
	{"long mixed", strings.Repeat("ok \" \x01 é \xff <", 40)},
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, tc := range jsonStringCases {
		t.Run(tc.name, func(t *testing.T) {
			checkAppendString(t, tc.s)
		})
	}
	t.Run("every byte", func(t *testing.T) {
		for c := range 256 {
			checkAppendString(t, "x"+string([]byte{byte(c)})+"y")
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, tc := range jsonStringCases {
		f.Add(tc.s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendString(t, s)
	})
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json.Marshal(%q) error = %v", s, err)
	}
	got := appendString([]byte("prefix"), s)
	if string(got[len("prefix"):]) != string(want) {
		t.Errorf("appendString(%q) = %s, want %s as from encoding/json", s, got[len("prefix"):], want)
	}
	if n := quotedLen(s); n != len(want) {
		t.Errorf("quotedLen(%q) = %d, want %d", s, n, len(want))
	}
}

func TestMarshalBatchMatchesUpstreamShape(t *testing.T) {
	tests := []struct {
		name  string
		batch *filebatchv1.VectorStoreFileBatch
		want  upstream.FileBatch // encoded with encoding/json for comparison
	}{
		{
			name: "cancelled batch",
			batch: &filebatchv1.VectorStoreFileBatch{
				Id: "vsfb_abc123", Object: "vector_store.file_batch", CreatedAt: 1699061776,
				VectorStoreId: "vs_abc123", Status: filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED,
				StatusRaw:  "cancelled",
				FileCounts: &filebatchv1.FileCounts{InProgress: 0, Completed: 5, Failed: 1, Cancelled: 3, Total: 9},
			},
			want: upstream.FileBatch{
				ID: "vsfb_abc123", Object: "vector_store.file_batch", CreatedAt: 1699061776,
				VectorStoreID: "vs_abc123", Status: "cancelled",
				FileCounts: upstream.FileCounts{Completed: 5, Failed: 1, Cancelled: 3, Total: 9},
			},
		},
		{
			name:  "zero batch keeps every field",
			batch: &filebatchv1.VectorStoreFileBatch{},
			want:  upstream.FileBatch{},
		},
		{
			name: "status_raw wins over the enum",
			batch: &filebatchv1.VectorStoreFileBatch{
				Id: "vsfb_1", Status: filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_UNSPECIFIED, StatusRaw: "cancelling",
			},
			want: upstream.FileBatch{ID: "vsfb_1", Status: "cancelling"},
		},
		{
			name:  "enum in_progress without status_raw",
			batch: &filebatchv1.VectorStoreFileBatch{Status: filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_IN_PROGRESS},
			want:  upstream.FileBatch{Status: "in_progress"},
		},
		{
			name:  "enum completed without status_raw",
			batch: &filebatchv1.VectorStoreFileBatch{Status: filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_COMPLETED},
			want:  upstream.FileBatch{Status: "completed"},
		},
		{
			name:  "enum cancelled without status_raw",
			batch: &filebatchv1.VectorStoreFileBatch{Status: filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED},
			want:  upstream.FileBatch{Status: "cancelled"},
		},
		{
			name:  "enum failed without status_raw",
			batch: &filebatchv1.VectorStoreFileBatch{Status: filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_FAILED},
			want:  upstream.FileBatch{Status: "failed"},
		},
		{
			name:  "undefined enum value without status_raw",
			batch: &filebatchv1.VectorStoreFileBatch{Status: filebatchv1.FileBatchStatus(42)},
			want:  upstream.FileBatch{},
		},
		{
			name:  "object passed through",
			batch: &filebatchv1.VectorStoreFileBatch{Object: "vector_store.files_batch"},
			want:  upstream.FileBatch{Object: "vector_store.files_batch"},
		},
		{
			name: "extreme numbers",
			batch: &filebatchv1.VectorStoreFileBatch{
				CreatedAt: math.MinInt64,
				FileCounts: &filebatchv1.FileCounts{
					InProgress: math.MaxInt64, Completed: math.MinInt64, Failed: -1, Cancelled: 1, Total: math.MaxInt64,
				},
			},
			want: upstream.FileBatch{
				CreatedAt: math.MinInt64,
				FileCounts: upstream.FileCounts{
					InProgress: math.MaxInt64, Completed: math.MinInt64, Failed: -1, Cancelled: 1, Total: math.MaxInt64,
				},
			},
		},
		{
			name: "strings that need escaping",
			batch: &filebatchv1.VectorStoreFileBatch{
				Id: "a\"b", Object: "<o>", VectorStoreId: "\x00\xff", StatusRaw: "é\u2028",
			},
			want: upstream.FileBatch{ID: "a\"b", Object: "<o>", VectorStoreID: "\x00\xff", Status: "é\u2028"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsonMarshaler{}.Marshal(tc.batch)
			if err != nil {
				t.Fatalf("Marshal() error = %v", err)
			}
			want, err := json.Marshal(tc.want)
			if err != nil {
				t.Fatalf("json.Marshal() error = %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("Marshal() = %s\nwant         %s", got, want)
			}
			if size := batchSize(tc.batch); size < len(got) {
				t.Errorf("batchSize() = %d, less than the output length %d", size, len(got))
			}
		})
	}
}

func TestMarshalBatchTypes(t *testing.T) {
	batch := &filebatchv1.VectorStoreFileBatch{Id: "vsfb_1", StatusRaw: "cancelled"}
	data, err := jsonMarshaler{}.Marshal(batch)
	if err != nil {
		t.Fatalf("Marshal() error = %v", err)
	}
	m := decodeJSON(t, data)
	for _, key := range []string{"id", "object", "vector_store_id", "status"} {
		if _, ok := m[key].(string); !ok {
			t.Errorf("%s = %#v, want a JSON string", key, m[key])
		}
	}
	if n, ok := m["created_at"].(json.Number); !ok || n != "0" {
		t.Errorf("created_at = %#v, want the JSON number 0", m["created_at"])
	}
	counts, ok := m["file_counts"].(map[string]any)
	if !ok {
		t.Fatalf("file_counts = %#v, want a JSON object", m["file_counts"])
	}
	for _, key := range []string{"in_progress", "completed", "failed", "cancelled", "total"} {
		if n, ok := counts[key].(json.Number); !ok || n != "0" {
			t.Errorf("file_counts.%s = %#v, want the JSON number 0", key, counts[key])
		}
	}
	if len(m) != 6 || len(counts) != 5 {
		t.Errorf("object has %d fields and file_counts %d, want 6 and 5: %s", len(m), len(counts), data)
	}
	if _, ok := m["status_raw"]; ok {
		t.Errorf("body has status_raw: %s", data)
	}
}

func TestMarshalNilBatch(t *testing.T) {
	var batch *filebatchv1.VectorStoreFileBatch
	if data, err := (jsonMarshaler{}).Marshal(batch); err == nil {
		t.Errorf("Marshal(nil batch) = %s, want an error", data)
	}
}

func TestMarshalBatchAllocatesOnce(t *testing.T) {
	batch := benchmarkBatch()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := (jsonMarshaler{}).Marshal(batch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 {
		t.Errorf("Marshal() allocates %v times per call, want 1", allocs)
	}
}

func TestMarshalOtherValues(t *testing.T) {
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{"proto message with proto names", &filebatchv1.CancelFileBatchRequest{VectorStoreId: "vs_1"}, `{"vector_store_id":"vs_1","batch_id":""}`},
		{"plain Go value", map[string]int{"n": 1}, `{"n":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsonMarshaler{}.Marshal(tc.value)
			if err != nil {
				t.Fatalf("Marshal() error = %v", err)
			}
			// protojson randomizes white space, so compare decoded values.
			if !jsonEqual(t, got, []byte(tc.want)) {
				t.Errorf("Marshal() = %s, want %s", got, tc.want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	ma, mb := decodeJSON(t, a), decodeJSON(t, b)
	ja, _ := json.Marshal(ma)
	jb, _ := json.Marshal(mb)
	return string(ja) == string(jb)
}

func TestAppendErrorBody(t *testing.T) {
	param, code := "batch_id", "invalid_api_key"
	tests := []struct {
		name string
		err  apiError
		want string
	}{
		{
			name: "null param and code",
			err:  apiError{message: "No such batch.", typ: "invalid_request_error"},
			want: `{"error":{"message":"No such batch.","type":"invalid_request_error","param":null,"code":null}}`,
		},
		{
			name: "param and code",
			err:  apiError{message: "m", typ: "t", param: &param, code: &code},
			want: `{"error":{"message":"m","type":"t","param":"batch_id","code":"invalid_api_key"}}`,
		},
		{
			name: "escaped message",
			err:  apiError{message: "bad \"id\" <\x01>", typ: "t"},
			want: `{"error":{"message":"bad \"id\" \u003c\u0001\u003e","type":"t","param":null,"code":null}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := appendErrorBody(nil, tc.err)
			if string(got) != tc.want {
				t.Errorf("appendErrorBody() = %s\nwant                %s", got, tc.want)
			}
			if n := errorBodySize(tc.err); n != len(got) {
				t.Errorf("errorBodySize() = %d, want %d", n, len(got))
			}
		})
	}
}

func benchmarkBatch() *filebatchv1.VectorStoreFileBatch {
	return &filebatchv1.VectorStoreFileBatch{
		Id:            "vsfb_abc123def456ghi789jkl012",
		Object:        "vector_store.file_batch",
		CreatedAt:     1699061776,
		VectorStoreId: "vs_abc123def456ghi789jkl012",
		Status:        filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED,
		StatusRaw:     "cancelled",
		FileCounts:    &filebatchv1.FileCounts{InProgress: 0, Completed: 5, Failed: 1, Cancelled: 3, Total: 9},
	}
}

func BenchmarkEncodeBatch(b *testing.B) {
	batch := benchmarkBatch()
	m := jsonMarshaler{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Marshal(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeError(b *testing.B) {
	code := "invalid_api_key"
	e := apiError{
		status:  401,
		message: "The API key in the Authorization header is not valid. Check the key and try again.",
		typ:     "invalid_request_error",
		code:    &code,
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = appendErrorBody(make([]byte, 0, errorBodySize(e)), e)
	}
}
