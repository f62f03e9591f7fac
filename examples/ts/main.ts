// Cancels a vector store file batch through FileBatchService and prints the
// batch, or the error and its details, as JSON on stdout. Run it from the
// repository root after `npm ci`:
//
//   npx tsx examples/ts/main.ts [--addr host:port] [--timeout seconds] --vector-store ID --batch ID
//
// The connection is plaintext HTTP/2. When FILEBATCH_TOKEN is set, the call
// carries "authorization: Bearer $FILEBATCH_TOKEN". Depending on the server's
// credential mode, the token is a service token or an OpenAI API key.
//
// The exit status is 0 when the call succeeds, 1 when it fails and 2 for
// invalid arguments. The Go and Python examples print the same document.

import { parseArgs } from "node:util";

import { create } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import {
  FileBatchService,
  FileBatchStatusSchema,
  FileCountsSchema,
  type VectorStoreFileBatch,
} from "../../gen/ts/filebatch/v1/filebatch_pb.js";

// gRPC status code names indexed by code, as the gRPC specification and the
// Go and Python examples spell them. Connect's Code enum uses other names.
const codeNames = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
  "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
  "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

interface ErrorOutput {
  code: string;
  message: string;
  reason: string;
  domain: string;
  metadata: Record<string, string>;
  request_id: string;
}

function describeBatch(batch: VectorStoreFileBatch) {
  const counts = batch.fileCounts ?? create(FileCountsSchema);
  // Unix seconds and file counts are far below 2^53, so Number is exact.
  return {
    id: batch.id,
    object: batch.object,
    created_at: Number(batch.createdAt),
    vector_store_id: batch.vectorStoreId,
    // The generated enum drops the FILE_BATCH_STATUS_ prefix, while the
    // descriptor has the full name. A value this build lacks prints as its
    // number.
    status: FileBatchStatusSchema.value[batch.status]?.name ?? String(batch.status),
    status_raw: batch.statusRaw,
    file_counts: {
      in_progress: Number(counts.inProgress),
      completed: Number(counts.completed),
      failed: Number(counts.failed),
      cancelled: Number(counts.cancelled),
      total: Number(counts.total),
    },
  };
}

// Returns the length-delimited fields of an encoded message in wire order.
// Every field of google.rpc.ErrorInfo and google.rpc.RequestInfo is a string
// or a map<string, string>, and both are length-delimited on the wire.
function lengthDelimitedFields(bytes: Uint8Array): Array<[number, Uint8Array]> {
  const fields: Array<[number, Uint8Array]> = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited) {
      fields.push([fieldNo, reader.bytes()]);
    } else {
      reader.skip(wireType);
    }
  }
  return fields;
}

// Reads the code, message, ErrorInfo and RequestInfo of a failed call.
// Connect decodes the google.rpc.Status in the grpc-status-details-bin
// trailer, so each detail arrives as its type name and encoded value.
function describeError(err: ConnectError): ErrorOutput {
  const out: ErrorOutput = {
    code: codeNames[err.code] ?? String(err.code),
    message: err.rawMessage,
    reason: "",
    domain: "",
    metadata: {},
    request_id: "",
  };
  // decode(undefined) returns "", the proto3 default of a missing field.
  const text = new TextDecoder();
  for (const detail of err.details) {
    if (!("type" in detail)) {
      continue; // an outgoing detail, which only errors built locally have
    }
    if (detail.type === "google.rpc.ErrorInfo") {
      // Fields: 1 reason, 2 domain, 3 metadata entries of 1 key and 2 value.
      for (const [fieldNo, value] of lengthDelimitedFields(detail.value)) {
        if (fieldNo === 1) {
          out.reason = text.decode(value);
        } else if (fieldNo === 2) {
          out.domain = text.decode(value);
        } else if (fieldNo === 3) {
          const entry = new Map(lengthDelimitedFields(value));
          out.metadata[text.decode(entry.get(1))] = text.decode(entry.get(2));
        }
      }
    } else if (detail.type === "google.rpc.RequestInfo") {
      // Fields: 1 request_id, 2 serving_data.
      const fields = new Map(lengthDelimitedFields(detail.value));
      out.request_id = text.decode(fields.get(1));
    }
  }
  return out;
}

async function cancel(addr: string, timeoutMs: number, vectorStoreId: string, batchId: string, token: string) {
  const transport = createGrpcTransport({ baseUrl: `http://${addr}` });
  const client = createClient(FileBatchService, transport);
  const headers: Record<string, string> = {};
  if (token !== "") {
    headers["authorization"] = `Bearer ${token}`;
  }

  let header = new Headers();
  let trailer = new Headers();
  try {
    const batch = await client.cancelFileBatch(
      { vectorStoreId, batchId },
      { timeoutMs, headers, onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) },
    );
    // The trailer is the fallback for a server that sends x-request-id as a
    // trailer rather than as a header.
    const requestId = header.get("x-request-id") ?? trailer.get("x-request-id") ?? "";
    return { batch: describeBatch(batch), x_request_id: requestId };
  } catch (reason) {
    if (!(reason instanceof ConnectError)) {
      throw reason;
    }
    // The metadata of a ConnectError joins the response headers and trailers.
    const requestId = reason.metadata.get("x-request-id") ?? "";
    return { error: describeError(reason), x_request_id: requestId };
  }
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        addr: { type: "string", default: process.env.FILEBATCH_ADDR || "127.0.0.1:50051" },
        timeout: { type: "string", default: "10" },
        "vector-store": { type: "string" },
        batch: { type: "string" },
      },
    });
  } catch (err) {
    console.error(`example: ${(err as Error).message}`);
    return 2;
  }
  const { values } = parsed;
  const vectorStoreId = values["vector-store"];
  const batchId = values.batch;
  const timeoutSeconds = Number(values.timeout);
  if (!vectorStoreId || !batchId || !(timeoutSeconds > 0)) {
    console.error("usage: main.ts [--addr host:port] [--timeout seconds] --vector-store ID --batch ID");
    return 2;
  }

  const out = await cancel(values.addr, timeoutSeconds * 1000, vectorStoreId, batchId, process.env.FILEBATCH_TOKEN ?? "");
  console.log(JSON.stringify(out, null, 2));
  return "error" in out ? 1 : 0;
}

process.exitCode = await main();
