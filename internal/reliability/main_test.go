package reliability

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine running.
//
// Two toxiproxy toxics are known to strand a goroutine when the connection
// they slow down is closed mid-chunk (Toxiproxy v2.12.0: SlicerToxic.Pipe and
// BandwidthToxic.Pipe block forever sending to a link whose writer has
// exited). That is the test proxy's leak, not failsoft's; it is ignored by
// its exact top function and nothing else is.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*SlicerToxic).Pipe"),
		goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*BandwidthToxic).Pipe"),
	)
}
