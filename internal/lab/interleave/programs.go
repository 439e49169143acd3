package interleave

import "strings"

// Builtin is one of the chapter's programs with the fixes that make it
// correct.
type Builtin struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	About  string `json:"about"`
	Source string `json:"source"`
	Fixes  []Fix  `json:"fixes"`
}

// Fix is a corrected version of a built-in program.
type Fix struct {
	ID     string `json:"id"` // the program's ID, "+", the fix's name
	Name   string `json:"name"`
	Why    string `json:"why"`
	Source string `json:"source"`
}

// Builtins are the chapter's programs, the default first.
var Builtins = []Builtin{
	{
		ID: "lost-update", Title: "x = x + 1, twice",
		About: "Two goroutines each add one to x. In Go, x++ on a shared int is a load, an add and a store: if both load before either stores, one update is lost.",
		Source: `# x = x + 1 in two goroutines: a load, an add, a store
var x = 0
check x == 2
go G1
  load r x
  add r 1
  store x r
go G2
  load r x
  add r 1
  store x r
`,
		Fixes: []Fix{
			{Name: "mutex", Why: "The lock makes load-add-store one critical section: the other goroutine cannot load until the store is done.",
				Source: `# x = x + 1 under a sync.Mutex
var x = 0
mutex m
check x == 2
go G1
  lock m
  load r x
  add r 1
  store x r
  unlock m
go G2
  lock m
  load r x
  add r 1
  store x r
  unlock m
`},
			{Name: "atomic", Why: "atomic.AddInt64 reads, adds and writes in one indivisible step (LOCK XADD on x86).",
				Source: `# x = x + 1 as one atomic add
var x = 0
check x == 2
go G1
  fadd x 1
go G2
  fadd x 1
`},
		},
	},
	{
		ID: "check-then-act", Title: "Check, then act: the shop's naive strategy",
		About: "Two buyers want the last unit. Each reads the stock, sees 1, and sells: the shop's \"naive\" strategy, which oversells under load.",
		Source: `# one unit left, two buyers: read the stock, then write it
var stock = 1
var sold = 0
check sold <= 1
check stock >= 0
go buyer1
  load s stock
  if s < 1 goto out
  add s -1
  store stock s
  fadd sold 1
out:
go buyer2
  load s stock
  if s < 1 goto out
  add s -1
  store stock s
  fadd sold 1
out:
`,
		Fixes: []Fix{
			{Name: "mutex", Why: "Check and act under one lock, as the shop's mutex strategy does: the second buyer reads the stock only after the first has written it.",
				Source: `# check and act under one lock
var stock = 1
var sold = 0
mutex m
check sold <= 1
check stock >= 0
go buyer1
  lock m
  load s stock
  if s < 1 goto out
  add s -1
  store stock s
  fadd sold 1
out:
  unlock m
go buyer2
  lock m
  load s stock
  if s < 1 goto out
  add s -1
  store stock s
  fadd sold 1
out:
  unlock m
`},
			{Name: "cas", Why: "Compare-and-swap writes the new stock only if it is still what was read, as the shop's atomic strategy does with UPDATE … WHERE stock >= 1: a buyer who lost the race is told to try again instead of overselling.",
				Source: `# take the unit with compare-and-swap; one try each
var stock = 1
var sold = 0
check sold <= 1
check stock >= 0
go buyer1
  load s stock
  if s < 1 goto out
  mov t s
  add t -1
  cas stock s t ok
  if ok == 0 goto out
  fadd sold 1
out:
go buyer2
  load s stock
  if s < 1 goto out
  mov t s
  add t -1
  cas stock s t ok
  if ok == 0 goto out
  fadd sold 1
out:
`},
		},
	},
	{
		ID: "double-check", Title: "Load it once: check, lock, and check again",
		About: "Each goroutine makes sure the configuration is loaded, loading it at most once. Checking before taking the lock, but not again after, lets both load it.",
		Source: `# check, then lock: both can pass the check before either locks
var ready = 0
var loads = 0
mutex m
check loads == 1
go G1
  load r ready
  if r != 0 goto done
  lock m
  fadd loads 1
  store ready 1
  unlock m
done:
go G2
  load r ready
  if r != 0 goto done
  lock m
  fadd loads 1
  store ready 1
  unlock m
done:
`,
		Fixes: []Fix{
			{Name: "double-checked", Why: "Check again under the lock. The model's memory is sequentially consistent; in Go the unlocked first read is a data race, which is why sync.Once keeps its fast-path flag in an atomic.",
				Source: `# check, lock, check again
var ready = 0
var loads = 0
mutex m
check loads == 1
go G1
  load r ready
  if r != 0 goto done
  lock m
  load r ready
  if r != 0 goto out
  fadd loads 1
  store ready 1
out:
  unlock m
done:
go G2
  load r ready
  if r != 0 goto done
  lock m
  load r ready
  if r != 0 goto out
  fadd loads 1
  store ready 1
out:
  unlock m
done:
`},
		},
	},
	{
		ID: "lock-order", Title: "Two locks, opposite orders: a deadlock",
		About: "G1 locks a then b; G2 locks b then a. If each takes its first lock before the other takes its second, both wait for ever.",
		Source: `# A then B against B then A
mutex a
mutex b
go G1
  lock a
  lock b
  unlock b
  unlock a
go G2
  lock b
  lock a
  unlock a
  unlock b
`,
		Fixes: []Fix{
			{Name: "lock order", Why: "Every goroutine takes the locks in one global order (a before b): the one that holds a can always get b.",
				Source: `# both take a, then b
mutex a
mutex b
go G1
  lock a
  lock b
  unlock b
  unlock a
go G2
  lock a
  lock b
  unlock b
  unlock a
`},
		},
	},
	{
		ID: "philosophers", Title: "Dining philosophers",
		About: "Three philosophers, three forks between them. Each takes the fork on the left, then the one on the right: if all take their left fork at once, nobody eats.",
		Source: `# each philosopher: left fork, right fork, eat, put both down
var meals = 0
mutex f1
mutex f2
mutex f3
check meals == 3
go P1
  lock f1
  lock f2
  fadd meals 1
  unlock f2
  unlock f1
go P2
  lock f2
  lock f3
  fadd meals 1
  unlock f3
  unlock f2
go P3
  lock f3
  lock f1
  fadd meals 1
  unlock f1
  unlock f3
`,
		Fixes: []Fix{
			{Name: "lock order", Why: "P3 takes the lower-numbered fork first, f1 before f3, as Dijkstra's resource ordering has it: the cycle of waits cannot close.",
				Source: `# P3 takes f1 before f3: forks in one global order
var meals = 0
mutex f1
mutex f2
mutex f3
check meals == 3
go P1
  lock f1
  lock f2
  fadd meals 1
  unlock f2
  unlock f1
go P2
  lock f2
  lock f3
  fadd meals 1
  unlock f3
  unlock f2
go P3
  lock f1
  lock f3
  fadd meals 1
  unlock f3
  unlock f1
`},
		},
	},
	{
		ID: "channel-deadlock", Title: "Both send first: a channel deadlock",
		About: "Two goroutines swap a value over unbuffered channels, each sending before it receives. An unbuffered send waits for a receiver, so both wait for ever, in every schedule.",
		Source: `# each sends, then receives, on unbuffered channels
chan c 0
chan d 0
var got = 0
check got == 2
go G1
  send c 1
  recv d r
  fadd got r
go G2
  send d 1
  recv c r
  fadd got r
`,
		Fixes: []Fix{
			{Name: "receive first", Why: "G2 receives before it sends, so G1's send has a partner.",
				Source: `# G2 receives first
chan c 0
chan d 0
var got = 0
check got == 2
go G1
  send c 1
  recv d r
  fadd got r
go G2
  recv c r
  send d 1
  fadd got r
`},
			{Name: "buffered", Why: "A buffer of one lets each send complete without a receiver waiting.",
				Source: `# buffered channels: a send waits only when the buffer is full
chan c 1
chan d 1
var got = 0
check got == 2
go G1
  send c 1
  recv d r
  fadd got r
go G2
  send d 1
  recv c r
  fadd got r
`},
		},
	},
}

func init() {
	for i := range Builtins {
		for j := range Builtins[i].Fixes {
			f := &Builtins[i].Fixes[j]
			f.ID = Builtins[i].ID + "+" + strings.ReplaceAll(f.Name, " ", "-")
		}
	}
}

// ProgramIDs lists every built-in program and fix, for the parameter.
func ProgramIDs() []string {
	var ids []string
	for _, b := range Builtins {
		ids = append(ids, b.ID)
		for _, f := range b.Fixes {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

// lookup finds a built-in program or fix by ID: its source, and the
// built-in it belongs to.
func lookup(id string) (src string, b Builtin, ok bool) {
	for _, b := range Builtins {
		if b.ID == id {
			return b.Source, b, true
		}
		for _, f := range b.Fixes {
			if f.ID == id {
				return f.Source, b, true
			}
		}
	}
	return "", Builtin{}, false
}
