package fakeupstream

import "sync"

// ObjectFileBatch is the object field of a file batch as OpenAI sends it.
const ObjectFileBatch = "vector_store.file_batch"

// Batch statuses that OpenAI documents.
const (
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// IDs of the default seed (see [DefaultBatches]).
const (
	// VectorStoreID is the vector store that holds the first four seeded
	// batches.
	VectorStoreID = "vs_abc123"
	// BatchInProgress is a batch of VectorStoreID with status in_progress:
	// 3 files in progress, 5 completed, 1 failed, 9 in total.
	BatchInProgress = "vsfb_abc123"
	// BatchCompleted is a batch of VectorStoreID with status completed.
	BatchCompleted = "vsfb_completed"
	// BatchFailed is a batch of VectorStoreID with status failed.
	BatchFailed = "vsfb_failed"
	// BatchCancelled is a batch of VectorStoreID with status cancelled.
	BatchCancelled = "vsfb_cancelled"
	// OtherVectorStoreID is a second vector store, so that tests can name a
	// batch that exists in another store.
	OtherVectorStoreID = "vs_def456"
	// OtherBatchInProgress is a batch of OtherVectorStoreID with status
	// in_progress.
	OtherBatchInProgress = "vsfb_def456"
)

// SeedCreatedAt is the created_at time, in Unix seconds, of
// [BatchInProgress]. The other seeded batches were created a minute apart
// after it.
const SeedCreatedAt = 1699061776

// Batch is a vector store file batch, encoded as OpenAI encodes it.
type Batch struct {
	ID string `json:"id"`
	// Object is the object type. [Server.AddBatch] and the seed set an
	// empty value to [ObjectFileBatch].
	Object        string `json:"object"`
	CreatedAt     int64  `json:"created_at"`
	VectorStoreID string `json:"vector_store_id"`
	// Status is one of the Status constants, or any other string. A cancel
	// request returns a batch with an undocumented status unchanged.
	Status     string     `json:"status"`
	FileCounts FileCounts `json:"file_counts"`
}

// FileCounts is the number of a batch's files in each processing state.
type FileCounts struct {
	InProgress int64 `json:"in_progress"`
	Completed  int64 `json:"completed"`
	Failed     int64 `json:"failed"`
	Cancelled  int64 `json:"cancelled"`
	Total      int64 `json:"total"`
}

// DefaultBatches returns a new copy of the default seed: the four batches
// [BatchInProgress], [BatchCompleted], [BatchFailed] and [BatchCancelled] in
// [VectorStoreID], and [OtherBatchInProgress] in [OtherVectorStoreID].
func DefaultBatches() []Batch {
	batch := func(id, vectorStoreID, status string, minutes int64, counts FileCounts) Batch {
		return Batch{
			ID:            id,
			Object:        ObjectFileBatch,
			CreatedAt:     SeedCreatedAt + 60*minutes,
			VectorStoreID: vectorStoreID,
			Status:        status,
			FileCounts:    counts,
		}
	}
	return []Batch{
		batch(BatchInProgress, VectorStoreID, StatusInProgress, 0,
			FileCounts{InProgress: 3, Completed: 5, Failed: 1, Total: 9}),
		batch(BatchCompleted, VectorStoreID, StatusCompleted, 1,
			FileCounts{Completed: 10, Total: 10}),
		batch(BatchFailed, VectorStoreID, StatusFailed, 2,
			FileCounts{Completed: 2, Failed: 4, Total: 6}),
		batch(BatchCancelled, VectorStoreID, StatusCancelled, 3,
			FileCounts{Completed: 1, Cancelled: 7, Total: 8}),
		batch(OtherBatchInProgress, OtherVectorStoreID, StatusInProgress, 4,
			FileCounts{InProgress: 2, Completed: 2, Total: 4}),
	}
}

// store holds the batches by ID. A vector store exists while at least one
// batch names it.
type store struct {
	mu           sync.Mutex
	seed         []Batch
	batches      map[string]Batch
	vectorStores map[string]int // number of batches per vector store
}

func newStore(seed []Batch) *store {
	st := &store{seed: append([]Batch(nil), seed...)}
	st.reset()
	return st
}

func (st *store) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.batches = make(map[string]Batch, len(st.seed))
	st.vectorStores = make(map[string]int)
	for _, b := range st.seed {
		st.putLocked(b)
	}
}

func (st *store) put(b Batch) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.putLocked(b)
}

func (st *store) putLocked(b Batch) {
	if b.Object == "" {
		b.Object = ObjectFileBatch
	}
	if old, ok := st.batches[b.ID]; ok {
		st.vectorStores[old.VectorStoreID]--
		if st.vectorStores[old.VectorStoreID] == 0 {
			delete(st.vectorStores, old.VectorStoreID)
		}
	}
	st.batches[b.ID] = b
	st.vectorStores[b.VectorStoreID]++
}

func (st *store) get(id string) (Batch, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, ok := st.batches[id]
	return b, ok
}

// cancel applies a cancel request and returns the batch for the response,
// or the error to send.
func (st *store) cancel(vectorStoreID, batchID string) (Batch, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.vectorStores[vectorStoreID] == 0 {
		return Batch{}, errVectorStoreNotFound(vectorStoreID)
	}
	b, ok := st.batches[batchID]
	if !ok || b.VectorStoreID != vectorStoreID {
		return Batch{}, errBatchNotFound(vectorStoreID, batchID)
	}
	switch b.Status {
	case StatusInProgress:
		b.Status = StatusCancelled
		b.FileCounts.Cancelled += b.FileCounts.InProgress
		b.FileCounts.InProgress = 0
		st.batches[b.ID] = b
	case StatusCompleted, StatusFailed, StatusCancelled:
		return Batch{}, errBatchFinished(b)
	}
	return b, nil
}

// AddBatch stores b, replacing any batch with the same ID. Its vector
// store exists from then on.
func (s *Server) AddBatch(b Batch) { s.store.put(b) }

// Batch returns the stored batch with the given ID.
func (s *Server) Batch(id string) (Batch, bool) { return s.store.get(id) }
