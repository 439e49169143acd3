package load

import "testing"

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		before, after Stock
		acknowledged  int64
		line          string
		failed        bool
	}{
		{Stock{100, 0}, Stock{0, 100}, 100, "sold 100 of 100, 0 left: the books balance", false},
		{Stock{100, 0}, Stock{-3, 103}, 103, "sold 103 of 100: OVERSOLD by 3", true},
		{Stock{100, 0}, Stock{2, 98}, 100, "sold 98 of 100, but 100 orders were acknowledged: LOST 2", true},
		{Stock{90, 10}, Stock{40, 60}, 45, "sold 60 of 100, 40 left: the books balance (5 units sold during the run were not acknowledged to these buyers)", false},
	} {
		v := Judge(tc.before, tc.after, tc.acknowledged)
		if v.Line != tc.line || v.Failed() != tc.failed {
			t.Errorf("Judge(%+v, %+v, %d) = %q, failed %v; want %q, %v", tc.before, tc.after, tc.acknowledged, v.Line, v.Failed(), tc.line, tc.failed)
		}
	}
}
