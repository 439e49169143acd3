package async

import (
	"context"
	"fmt"
	"time"
)

// Two producers of five values each, two consumers: every value arrives
// once, and the consumers have finished when Pipeline returns.
func ExamplePipeline() {
	received, sum := Pipeline(context.Background(), 2, 2, 5, time.Millisecond)
	fmt.Println(received, sum)
	// Output: 10 45
}
