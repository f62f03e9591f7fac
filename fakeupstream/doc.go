// Package fakeupstream is a fake of the OpenAI REST API call that the
// service wraps:
//
//	POST /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel
//
// A [Server] is an [http.Handler], and [Server.Start] serves it over
// HTTP/1.1 on a loopback address. [Server.URL] returns the API root, such as
// "http://127.0.0.1:8081/v1". Tests use [NewTest].
//
// # Responses
//
// The server keeps file batches in memory. Cancelling a batch whose status
// is in_progress sets it to cancelled and moves its in-progress files to
// the cancelled count. The change persists, so a second cancel fails.
// A batch with a status other than the four documented ones is returned
// unchanged.
//
// A request is handled in this order, and the first step that responds
// ends it:
//
//  1. [Options.Delay] is waited.
//  2. The next queued [Fault], if any, responds. Faults come before the key
//     check and the routing, so they apply to any request.
//  3. A request without a bearer key gets a 401 with a null code, and one
//     with a key other than [Options.APIKey] a 401 with code
//     invalid_api_key. The message never contains the key.
//  4. A path other than the cancel path gets a 404, and another method on
//     the cancel path a 405 with "Allow: POST".
//  5. An unknown vector store, or a batch that is unknown or belongs to
//     another vector store, gets a 404. A batch that is completed, failed
//     or cancelled gets a 400.
//  6. The cancelled batch is sent with status 200.
//
// Every error that these steps send is an OpenAI error envelope of type
// invalid_request_error:
//
//	{"error": {"message": "...", "type": "...", "param": null, "code": null}}
//
// Every response, except those of faults that omit them, carries
// Content-Type application/json, x-request-id (req_ and 32 hex digits,
// unique per response), openai-processing-ms, openai-version, and
// x-ratelimit-limit-requests, x-ratelimit-remaining-requests and
// x-ratelimit-reset-requests.
//
// # Default seed
//
// When [Options.Batches] is nil, the server starts with [DefaultBatches]:
//
//	vector store  batch           status       in_progress  completed  failed  cancelled  total
//	vs_abc123     vsfb_abc123     in_progress  3            5          1       0          9
//	vs_abc123     vsfb_completed  completed    0            10         0       0          10
//	vs_abc123     vsfb_failed     failed       0            2          4       0          6
//	vs_abc123     vsfb_cancelled  cancelled    0            1          0       7          8
//	vs_def456     vsfb_def456     in_progress  2            2          0       0          4
//
// vsfb_abc123 was created at [SeedCreatedAt] (1699061776), and each
// following row one minute later. The IDs are exported as constants, such
// as [VectorStoreID] and [BatchInProgress].
//
// # Recording and faults
//
// Every request is recorded when it arrives (see [Server.Requests] and
// [Server.WaitRequests]), and [Request.Done] and [Request.Canceled] report
// when and how it ended. [Server.Inject] queues faults that replace the
// next responses, such as a 429, an HTML page from a proxy, a body cut short
// or a reset connection.
//
// # Fast mode
//
// With [Options.Fast], for benchmarks, the server keeps no state, records
// nothing and ignores faults. It responds to any request that has an
// Authorization header with the same cancelled batch, and to others with a
// 401. [Server.ConnectionsOpened] counts connections in both modes.
package fakeupstream
