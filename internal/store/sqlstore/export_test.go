package sqlstore

// Queued is the number of callers queued for the group writer and the
// number it took so far.
func Queued(s *Store) (waiting, taken int) {
	return int(s.group.waiting.Load()), int(s.group.taken.Load())
}
