package shopd

import "github.com/stampede-dev/stampede/internal/shop"

// HeapFloorFor is heapFloorSize, for the tests.
var HeapFloorFor = heapFloorSize

// ServiceOf builds an order service over s's store and strategy, as s's
// API has, for benchmarks that place orders without HTTP.
func ServiceOf(s *Server) (*shop.Service, shop.Store) {
	return shop.NewService(s.store, s.strategy, s.cfg.MaxInFlight, s.cfg.OrderTimeout), s.store
}
