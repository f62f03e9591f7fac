package upstream

// FileBatch is the upstream's vector store file batch object, decoded
// tolerantly: fields this type does not name are ignored, and Object and
// Status hold whatever strings the upstream sent.
type FileBatch struct {
	ID            string     `json:"id"`
	Object        string     `json:"object"`
	CreatedAt     int64      `json:"created_at"`
	VectorStoreID string     `json:"vector_store_id"`
	Status        string     `json:"status"`
	FileCounts    FileCounts `json:"file_counts"`
}

// FileCounts is the number of a batch's files in each processing state.
type FileCounts struct {
	InProgress int64 `json:"in_progress"`
	Completed  int64 `json:"completed"`
	Failed     int64 `json:"failed"`
	Cancelled  int64 `json:"cancelled"`
	Total      int64 `json:"total"`
}
