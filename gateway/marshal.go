package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// contentTypeJSON is the Content-Type of every response, as the OpenAI API
// sends it.
const contentTypeJSON = "application/json"

// jsonMarshaler writes a [filebatchv1.VectorStoreFileBatch] as the OpenAI
// API's JSON object rather than as protojson. The two differ in three ways:
// protojson writes int64 values as strings, writes the status enum by its
// proto name, and has no field that holds status_raw's value under the name
// "status".
//
// Other messages, which no route of the service returns, fall back to
// protojson with the proto field names.
type jsonMarshaler struct{}

var _ runtime.Marshaler = jsonMarshaler{}

var (
	fallbackMarshal   = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	fallbackUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// errNilBatch is returned for a nil batch, which would otherwise become a
// 200 response with the body null.
var errNilBatch = errors.New("gateway: marshal batch: batch is nil")

// ContentType returns "application/json" for every value.
func (jsonMarshaler) ContentType(any) string { return contentTypeJSON }

// Marshal encodes v. A *filebatchv1.VectorStoreFileBatch gets the upstream's
// JSON shape. Other proto messages use protojson, and any other value
// encoding/json.
func (jsonMarshaler) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *filebatchv1.VectorStoreFileBatch:
		if m == nil {
			return nil, errNilBatch
		}
		return appendBatch(make([]byte, 0, batchSize(m)), m), nil
	case proto.Message:
		return fallbackMarshal.Marshal(m)
	default:
		return json.Marshal(v)
	}
}

// Unmarshal decodes data into v with protojson for proto messages and
// encoding/json otherwise. The cancel route has no request body, so only
// routes added later would call it.
func (jsonMarshaler) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return fallbackUnmarshal.Unmarshal(data, m)
	}
	return json.Unmarshal(data, v)
}

// NewDecoder returns a decoder that reads one JSON value from r per call.
func (j jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	dec := json.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		return j.Unmarshal(raw, v)
	})
}

// NewEncoder returns an encoder that writes each value to w as Marshal
// encodes it, followed by a newline.
func (j jsonMarshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		data, err := j.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(append(data, '\n'))
		return err
	})
}

// batchStatus returns the status string to send: status_raw when the
// upstream sent one, else the upstream spelling of the enum value, which is
// "" for FILE_BATCH_STATUS_UNSPECIFIED.
func batchStatus(b *filebatchv1.VectorStoreFileBatch) string {
	if raw := b.GetStatusRaw(); raw != "" {
		return raw
	}
	switch b.GetStatus() {
	case filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_IN_PROGRESS:
		return "in_progress"
	case filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_COMPLETED:
		return "completed"
	case filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_CANCELLED:
		return "cancelled"
	case filebatchv1.FileBatchStatus_FILE_BATCH_STATUS_FAILED:
		return "failed"
	default:
		return ""
	}
}

// The constant parts of a batch object, in the upstream's field order.
const (
	batchID            = `{"id":`
	batchObject        = `,"object":`
	batchCreatedAt     = `,"created_at":`
	batchVectorStoreID = `,"vector_store_id":`
	batchStatusKey     = `,"status":`
	batchInProgress    = `,"file_counts":{"in_progress":`
	batchCompleted     = `,"completed":`
	batchFailed        = `,"failed":`
	batchCancelled     = `,"cancelled":`
	batchTotal         = `,"total":`
	batchEnd           = `}}`

	batchFixedSize = len(batchID) + len(batchObject) + len(batchCreatedAt) +
		len(batchVectorStoreID) + len(batchStatusKey) + len(batchInProgress) +
		len(batchCompleted) + len(batchFailed) + len(batchCancelled) +
		len(batchTotal) + len(batchEnd)

	// maxInt64Digits is the length of the longest int64 in decimal,
	// "-9223372036854775808".
	maxInt64Digits = 20
)

// batchSize returns an upper bound of the length of b's JSON object, exact
// for the strings and the widest case for the six numbers, so that Marshal
// allocates once.
func batchSize(b *filebatchv1.VectorStoreFileBatch) int {
	return batchFixedSize + 6*maxInt64Digits +
		quotedLen(b.GetId()) + quotedLen(b.GetObject()) +
		quotedLen(b.GetVectorStoreId()) + quotedLen(batchStatus(b))
}

// appendBatch appends b's JSON object to dst with every field present, the
// numbers as JSON numbers, and no status_raw field.
func appendBatch(dst []byte, b *filebatchv1.VectorStoreFileBatch) []byte {
	counts := b.GetFileCounts()
	dst = append(dst, batchID...)
	dst = appendString(dst, b.GetId())
	dst = append(dst, batchObject...)
	dst = appendString(dst, b.GetObject())
	dst = append(dst, batchCreatedAt...)
	dst = strconv.AppendInt(dst, b.GetCreatedAt(), 10)
	dst = append(dst, batchVectorStoreID...)
	dst = appendString(dst, b.GetVectorStoreId())
	dst = append(dst, batchStatusKey...)
	dst = appendString(dst, batchStatus(b))
	dst = append(dst, batchInProgress...)
	dst = strconv.AppendInt(dst, counts.GetInProgress(), 10)
	dst = append(dst, batchCompleted...)
	dst = strconv.AppendInt(dst, counts.GetCompleted(), 10)
	dst = append(dst, batchFailed...)
	dst = strconv.AppendInt(dst, counts.GetFailed(), 10)
	dst = append(dst, batchCancelled...)
	dst = strconv.AppendInt(dst, counts.GetCancelled(), 10)
	dst = append(dst, batchTotal...)
	dst = strconv.AppendInt(dst, counts.GetTotal(), 10)
	return append(dst, batchEnd...)
}

// asciiSafe reports which ASCII bytes appendString copies unescaped. Like
// encoding/json.Marshal, it escapes control characters, '"', '\\', and the
// HTML characters '<', '>' and '&'.
var asciiSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		safe[c] = true
	}
	for _, c := range `"\<>&` {
		safe[c] = false
	}
	return safe
}()

const hexDigits = "0123456789abcdef"

// appendString appends s to dst as a JSON string, escaped byte for byte as
// encoding/json.Marshal escapes it: \b, \f, \n, \r and \t by their short
// escapes, other control characters and '<', '>', '&' as \u00XX, U+2028 and
// U+2029 as \u2028 and \u2029, and each byte of invalid UTF-8 as \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, to be copied unescaped
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but line terminators in JavaScript source.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// quotedLen returns the length of appendString's output for s.
func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			switch {
			case asciiSafe[c]:
				n++
			case c == '"', c == '\\', c == '\b', c == '\f', c == '\n', c == '\r', c == '\t':
				n += 2
			default:
				n += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}
