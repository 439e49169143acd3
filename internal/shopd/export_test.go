package shopd

// HeapFloorFor is heapFloorSize, for the tests.
var HeapFloorFor = heapFloorSize
