// Runs the official OpenAI Node SDK against the filebatch REST façade, with
// only its base URL changed. It checks that the SDK parses the façade's
// responses as it parses the OpenAI API's: the cancelled batch, and the error
// classes, messages and request IDs of failed calls.
//
// The server must run in pass-through credential mode, so that the SDK's
// key reaches the upstream. cmd/server/facade_sdk_test.go starts the fake
// upstream and the server and runs this file with `node --test`.
//
// Environment:
//   FILEBATCH_BASE_URL           façade API root, such as http://127.0.0.1:8080/v1
//   FILEBATCH_API_KEY            key that the upstream accepts
//   FILEBATCH_VECTOR_STORE_ID    vector store of the batches below
//   FILEBATCH_BATCH_ID           in-progress batch that the first test cancels
//   FILEBATCH_EXPECTED_BATCH     JSON object that the cancel must return
//   FILEBATCH_UNKNOWN_BATCH_ID   batch ID that the upstream does not know
//   FILEBATCH_NOT_FOUND_MESSAGE  upstream's error message for that batch
//                                (optional: when unset, only its presence is checked)

import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI, { AuthenticationError, NotFoundError } from 'openai';

function requireEnv(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`missing environment variable ${name}; see the comment at the top of this file`);
  }
  return value;
}

const baseURL = requireEnv('FILEBATCH_BASE_URL');
const apiKey = requireEnv('FILEBATCH_API_KEY');
const vectorStoreID = requireEnv('FILEBATCH_VECTOR_STORE_ID');
const batchID = requireEnv('FILEBATCH_BATCH_ID');
const expectedBatch = JSON.parse(requireEnv('FILEBATCH_EXPECTED_BATCH'));
const unknownBatchID = requireEnv('FILEBATCH_UNKNOWN_BATCH_ID');
const notFoundMessage = process.env.FILEBATCH_NOT_FOUND_MESSAGE;

// newClient returns an SDK client that does not retry, so that each test
// checks the first response.
function newClient(options = {}) {
  return new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20_000, ...options });
}

// checkNoGatewayHeaders fails when the response carries grpc-gateway's
// metadata headers, which the OpenAI API never sends.
function checkNoGatewayHeaders(headers) {
  for (const [name] of headers) {
    assert.ok(!/^grpc-(metadata|trailer)-/i.test(name), `response has header ${name}`);
  }
}

// checkEnvelope checks the fields that the SDK copies from the error body.
function checkEnvelope(err) {
  assert.equal(typeof err.error?.message, 'string', 'error.message is a string');
  assert.equal(typeof err.type, 'string', 'error.type is a string');
  assert.ok(err.param === null || typeof err.param === 'string', `param ${err.param} is null or a string`);
  assert.ok(err.code === null || typeof err.code === 'string', `code ${err.code} is null or a string`);
}

test('cancel returns every field of the batch', async () => {
  const { data: batch, response, request_id: requestID } = await newClient()
    .vectorStores.fileBatches.cancel(batchID, { vector_store_id: vectorStoreID })
    .withResponse();

  assert.deepEqual(Object.keys(batch).sort(), [
    'created_at', 'file_counts', 'id', 'object', 'status', 'vector_store_id',
  ]);
  assert.deepEqual(Object.keys(batch.file_counts).sort(), [
    'cancelled', 'completed', 'failed', 'in_progress', 'total',
  ]);
  assert.equal(typeof batch.id, 'string');
  assert.equal(typeof batch.object, 'string');
  assert.equal(typeof batch.created_at, 'number');
  assert.equal(typeof batch.vector_store_id, 'string');
  assert.equal(typeof batch.status, 'string');
  for (const [name, count] of Object.entries(batch.file_counts)) {
    assert.ok(Number.isInteger(count), `file_counts.${name} = ${count} is an integer`);
  }
  assert.deepStrictEqual(batch, expectedBatch);

  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.ok(requestID, 'the SDK exposes the x-request-id of the response');
  assert.equal(requestID, response.headers.get('x-request-id'));
  checkNoGatewayHeaders(response.headers);
});

test('unknown batch raises NotFoundError', async () => {
  await assert.rejects(
    newClient().vectorStores.fileBatches.cancel(unknownBatchID, { vector_store_id: vectorStoreID }),
    (err) => {
      assert.ok(err instanceof NotFoundError, `error is ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 404);
      checkEnvelope(err);
      if (notFoundMessage !== undefined) {
        assert.equal(err.error.message, notFoundMessage);
      }
      assert.ok(err.requestID, 'the SDK exposes the x-request-id of the error');
      assert.equal(err.requestID, err.headers.get('x-request-id'));
      checkNoGatewayHeaders(err.headers);
      return true;
    },
  );
});

test('wrong key raises AuthenticationError', async () => {
  const client = newClient({ apiKey: 'sk-not-the-right-key' });
  await assert.rejects(
    client.vectorStores.fileBatches.cancel(batchID, { vector_store_id: vectorStoreID }),
    (err) => {
      assert.ok(err instanceof AuthenticationError, `error is ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 401);
      checkEnvelope(err);
      assert.ok(!err.message.includes('sk-not-the-right-key'), `message ${err.message} contains the key`);
      return true;
    },
  );
});

test('missing key raises AuthenticationError', async () => {
  // A null header makes the SDK send no Authorization header at all.
  const client = newClient({ defaultHeaders: { Authorization: null } });
  await assert.rejects(
    client.vectorStores.fileBatches.cancel(batchID, { vector_store_id: vectorStoreID }),
    (err) => {
      assert.ok(err instanceof AuthenticationError, `error is ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 401);
      checkEnvelope(err);
      return true;
    },
  );
});
