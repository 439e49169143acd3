package shop

// KeysInFlight exposes how many Idempotency-Keys a Reserve holds.
func KeysInFlight(r *Reserve) int { return r.keysInFlight() }
