"""Cancel a vector store file batch through FileBatchService.

The program prints the batch, or the error and its details, as JSON on
stdout. Run it from the repository root with the generated code on the
import path:

    PYTHONPATH=gen/python python3 examples/python/main.py \\
        [--addr HOST:PORT] [--timeout SECONDS] --vector-store ID --batch ID

It needs the grpcio and protobuf packages (Debian: python3-grpcio and
python3-protobuf). The connection is plaintext. When FILEBATCH_TOKEN is set,
the call carries "authorization: Bearer $FILEBATCH_TOKEN". Depending on the
server's credential mode, the token is a service token or an OpenAI API key.

The exit status is 0 when the call succeeds, 1 when it fails and 2 for
invalid arguments. The Go and TypeScript examples print the same document.
"""

import argparse
import json
import os
import sys

import grpc
from google.protobuf import any_pb2, descriptor_pb2, message_factory

from filebatch.v1 import filebatch_pb2, filebatch_pb2_grpc

# Trailer that carries the serialized google.rpc.Status with the details.
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def build_rpc_messages():
    """Build the google.rpc.Status, ErrorInfo and RequestInfo classes.

    googleapis-common-protos, which ships these messages, is not a
    dependency, so the descriptors are written here with the field numbers
    and types of google/rpc/status.proto and google/rpc/error_details.proto.
    Only the fields that this program reads are declared. message_factory
    puts them in a descriptor pool of their own, so they do not clash with
    googleapis-common-protos when it is installed.
    """
    Field = descriptor_pb2.FieldDescriptorProto

    def field(name, number, kind, repeated=False, type_name=None):
        label = Field.LABEL_REPEATED if repeated else Field.LABEL_OPTIONAL
        # type_name must stay unset, not "", on scalar fields.
        return Field(name=name, number=number, type=kind, label=label, type_name=type_name)

    text = Field.TYPE_STRING
    message = Field.TYPE_MESSAGE
    file = descriptor_pb2.FileDescriptorProto(
        name="filebatch_example/google_rpc.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    file.message_type.add(name="Status", field=[
        field("code", 1, Field.TYPE_INT32),
        field("message", 2, text),
        field("details", 3, message, repeated=True, type_name=".google.protobuf.Any"),
    ])
    error_info = file.message_type.add(name="ErrorInfo", field=[
        field("reason", 1, text),
        field("domain", 2, text),
        field("metadata", 3, message, repeated=True, type_name=".google.rpc.ErrorInfo.MetadataEntry"),
    ])
    # A map<string, string> field is a repeated entry message with map_entry set.
    entry = error_info.nested_type.add(name="MetadataEntry", field=[
        field("key", 1, text),
        field("value", 2, text),
    ])
    entry.options.map_entry = True
    file.message_type.add(name="RequestInfo", field=[
        field("request_id", 1, text),
        field("serving_data", 2, text),
    ])

    any_file = descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb)
    classes = message_factory.GetMessages([any_file, file])
    return classes["google.rpc.Status"], classes["google.rpc.ErrorInfo"], classes["google.rpc.RequestInfo"]


Status, ErrorInfo, RequestInfo = build_rpc_messages()


def first_value(metadata, key):
    """Return the first value of key in gRPC metadata, or "" when it is absent."""
    for name, value in metadata or ():
        if name == key:
            return value
    return ""


def status_name(value):
    """Return the FileBatchStatus name, or the number when this build lacks it."""
    try:
        return filebatch_pb2.FileBatchStatus.Name(value)
    except ValueError:
        return str(value)


def describe_batch(batch):
    counts = batch.file_counts
    return {
        "id": batch.id,
        "object": batch.object,
        "created_at": batch.created_at,
        "vector_store_id": batch.vector_store_id,
        "status": status_name(batch.status),
        "status_raw": batch.status_raw,
        "file_counts": {
            "in_progress": counts.in_progress,
            "completed": counts.completed,
            "failed": counts.failed,
            "cancelled": counts.cancelled,
            "total": counts.total,
        },
    }


def describe_error(error):
    """Read the code, message, ErrorInfo and RequestInfo of a failed call."""
    out = {
        "code": error.code().name,
        "message": error.details() or "",
        "reason": "",
        "domain": "",
        "metadata": {},
        "request_id": "",
    }
    details = first_value(error.trailing_metadata(), STATUS_DETAILS_KEY)
    if not details:
        return out
    for detail in Status.FromString(details).details:
        # A type URL ends in the message's full name after the last "/".
        type_name = detail.type_url.rpartition("/")[2]
        if type_name == "google.rpc.ErrorInfo":
            info = ErrorInfo.FromString(detail.value)
            out["reason"] = info.reason
            out["domain"] = info.domain
            out["metadata"] = dict(info.metadata)
        elif type_name == "google.rpc.RequestInfo":
            out["request_id"] = RequestInfo.FromString(detail.value).request_id
    return out


def cancel(addr, timeout, vector_store_id, batch_id, token):
    """Call CancelFileBatch and return the output document."""
    request = filebatch_pb2.CancelFileBatchRequest(vector_store_id=vector_store_id, batch_id=batch_id)
    metadata = [("authorization", "Bearer " + token)] if token else []
    with grpc.insecure_channel(addr) as channel:
        stub = filebatch_pb2_grpc.FileBatchServiceStub(channel)
        try:
            batch, call = stub.CancelFileBatch.with_call(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            # The trailing metadata is the fallback for a server that sends
            # x-request-id as a trailer rather than as a header.
            request_id = first_value(error.initial_metadata(), "x-request-id")
            return {
                "error": describe_error(error),
                "x_request_id": request_id or first_value(error.trailing_metadata(), "x-request-id"),
            }
    request_id = first_value(call.initial_metadata(), "x-request-id")
    return {
        "batch": describe_batch(batch),
        "x_request_id": request_id or first_value(call.trailing_metadata(), "x-request-id"),
    }


def main():
    parser = argparse.ArgumentParser(description="Cancel a vector store file batch through FileBatchService.")
    parser.add_argument("--addr", default=os.environ.get("FILEBATCH_ADDR") or "127.0.0.1:50051",
                        help="server address as host:port, without TLS (default: %(default)s, from FILEBATCH_ADDR when set)")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of the call in seconds")
    parser.add_argument("--vector-store", required=True, metavar="ID",
                        help="ID of the vector store, such as vs_abc123")
    parser.add_argument("--batch", required=True, metavar="ID", help="ID of the file batch to cancel, such as vsfb_abc123")
    args = parser.parse_args()

    out = cancel(args.addr, args.timeout, args.vector_store, args.batch, os.environ.get("FILEBATCH_TOKEN", ""))
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())
