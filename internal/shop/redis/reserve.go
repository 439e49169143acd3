package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stampede-dev/stampede/internal/shop"
	"golang.org/x/sync/singleflight"
)

// reserve takes stock and the users' allowances for a batch of orders and
// appends each order it reserves to the durable queue, all in one atomic
// step: one script run answers every buyer a batch sender holds, so
// Redis runs a script, and reads each product's stock, limit and epoch,
// once per batch instead of once per buyer. The orders are taken in the
// batch's order, each seeing the ones before it (a second order with the
// same key is a duplicate of the first). It answers two values per order:
// its status and a detail ("" when none): ok, uninit, limit, dup with the
// earlier order's record, sold_out with the product's restock generation.
// Units are counted per user only for a product with a per-user limit, as
// the store counts them.
//
// Each entry carries the product's reservation epoch (see seed), so that
// the store refuses it if Redis was rebuilt after it was reserved.
//
// KEYS: the stream, then per order: stock, users, limit, idempotency,
// reserved keys, restocks, epoch.
// ARGV: per order: quantity, user, order id, request hash, product, key,
// created (ns).
var reserve = goredis.NewScript(`
local out, stock, limit, epoch, taken, reserved = {}, {}, {}, {}, {}, {}
for i = 0, #ARGV / 7 - 1 do
  local k, a = 1 + 7 * i, 7 * i
  local sk = KEYS[k + 1]
  local s = stock[sk]
  if s == nil then
    local v = redis.call('GET', sk)
    s = v and tonumber(v) or false
    stock[sk] = s
  end
  local key = ARGV[a + 6]
  local prev = false
  if s and key ~= '' then prev = redis.call('GET', KEYS[k + 4]) end
  local q = tonumber(ARGV[a + 1])
  if not s then
    out[#out + 1] = 'uninit'; out[#out + 1] = ''
  elseif prev then
    out[#out + 1] = 'dup'; out[#out + 1] = prev
  elseif s < q then
    out[#out + 1] = 'sold_out'; out[#out + 1] = redis.call('GET', KEYS[k + 6]) or '0'
  else
    local lk = KEYS[k + 3]
    local lim = limit[lk]
    if lim == nil then
      lim = tonumber(redis.call('GET', lk) or '0')
      limit[lk] = lim
    end
    if lim > 0 and tonumber(redis.call('HGET', KEYS[k + 2], ARGV[a + 2]) or '0') + q > lim then
      out[#out + 1] = 'limit'; out[#out + 1] = ''
    else
      stock[sk] = s - q
      taken[sk] = (taken[sk] or 0) + q
      if lim > 0 then redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 2], q) end
      if key ~= '' then
        redis.call('SET', KEYS[k + 4], ARGV[a + 3] .. '\n' .. ARGV[a + 4] .. '\n' .. ARGV[a + 7], 'EX', 86400)
        local rk = KEYS[k + 5]
        if reserved[rk] == nil then reserved[rk] = {} end
        table.insert(reserved[rk], key)
      end
      local ek = KEYS[k + 7]
      local e = epoch[ek]
      if e == nil then
        e = redis.call('GET', ek) or '0'
        epoch[ek] = e
      end
      redis.call('XADD', KEYS[1], '*', 'id', ARGV[a + 3], 'p', ARGV[a + 5], 'u', ARGV[a + 2], 'q', ARGV[a + 1],
        'k', key, 'h', ARGV[a + 4], 't', ARGV[a + 7], 'e', e)
      out[#out + 1] = 'ok'; out[#out + 1] = ''
    end
  end
end
for sk, q in pairs(taken) do redis.call('DECRBY', sk, q) end
for rk, keys in pairs(reserved) do
  redis.call('SADD', rk, unpack(keys))
  redis.call('EXPIRE', rk, 86400)
end
return out`)

// load seeds a product's reservation state from the store, read in a new
// reservation epoch (Store.BeginReservations). It writes only if Redis has
// no state for the product, or state from an older epoch: two processes
// that both found the product missing both move the epoch on, and the
// newer state wins (orders reserved against the older are refused by the
// store as stale). Seeding counts as a restock: every process forgets
// that the product was sold out. The Idempotency-Keys of the product's
// stored orders are seeded too, so that Redis knows every key that bought
// the product and a retry of a stored order is answered with it (see
// KeysComplete).
//
// KEYS: stock, users, limit, restocks, reserved keys, epoch.
// ARGV: stock, limit, channel, product, key prefix, epoch, n users, then n
// user, quantity pairs, then key, record pairs (record as the reserve
// script writes it).
var load = goredis.NewScript(`
local have = tonumber(redis.call('GET', KEYS[6]) or '-1')
if redis.call('EXISTS', KEYS[1]) == 1 and have >= tonumber(ARGV[6]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('SET', KEYS[6], ARGV[6])
redis.call('DEL', KEYS[2], KEYS[5])
local users = tonumber(ARGV[7])
for i = 8, 7 + 2 * users, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for i = 8 + 2 * users, #ARGV, 2 do
  redis.call('SET', ARGV[5] .. ARGV[i], ARGV[i + 1], 'EX', 86400)
  redis.call('SADD', KEYS[5], ARGV[i])
end
redis.call('EXPIRE', KEYS[5], 86400)
local gen = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[3], 'restock:' .. ARGV[4] .. ':' .. gen)
return 1`)

// forgetKey deletes an Idempotency-Key's record if it names the order, and
// the key from the product's reserved keys: the order was refused as
// stale, and a retry must reserve anew.
//
// KEYS: idempotency, reserved keys. ARGV: order id, key.
var forgetKey = goredis.NewScript(`
local rec = redis.call('GET', KEYS[1])
if rec and string.sub(rec, 1, #ARGV[1] + 1) == ARGV[1] .. '\n' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 1`)

// giveBack returns an order's units to stock and, where users are
// counted, to its user, and tells every process that the product may sell
// again.
//
// KEYS: stock, users, restocks, limit. ARGV: quantity, user, channel,
// product.
var giveBack = goredis.NewScript(`
redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(redis.call('GET', KEYS[4]) or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], -tonumber(ARGV[1]))
end
local gen = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[3], 'restock:' .. ARGV[4] .. ':' .. gen)
return gen`)

// giveAllowance returns an order's units to its user where users are
// counted.
//
// KEYS: users, limit. ARGV: quantity, user.
var giveAllowance = goredis.NewScript(`
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[2], -tonumber(ARGV[1]))
end
return 1`)

// maxKnownKeys bounds the Idempotency-Keys a process keeps of a sold-out
// product; past it, orders with a key ask Redis even when sold out.
const maxKnownKeys = 200_000

const group = "writers"

// Reserve is the reserve strategy for many processes. Redis holds the stock
// and takes each reservation atomically with a Lua script that also appends
// the order to a Redis Stream. Every shop process runs a writer in one
// consumer group: it reads a batch from the stream, commits it to the store
// in one transaction (group commit), acknowledges the entries only after the
// commit, and announces the committed order ids. A buyer is answered when
// its order is announced, so every acknowledged order is in the store.
//
// If a shop process dies with entries read but not committed, another
// process's writer claims them once the dead writer's heartbeat has lapsed
// (within aliveFor) and commits them.
type Reserve struct {
	rdb      *goredis.Client
	sdb      *goredis.Client // the reserve script's: never resent (see NewReserve)
	wdb      *goredis.Client // the writer's own connections: see NewReserve
	store    shop.Store
	prefix   string
	stream   string
	channel  string
	consumer string
	maxBatch int64
	log      *slog.Logger

	mu       sync.Mutex
	waiters  map[string]*waiter
	loaded   map[int64]bool
	seeding  singleflight.Group
	agreeing singleflight.Group // one store poll per product at a time (storeAgrees)
	soldOut  map[int64]*soldOut
	learning map[int64]bool
	restocks map[int64]int64 // the newest restock generation heard of, per product

	pending chan *reservation     // buyers waiting for a batch sender
	acking  chan struct{}         // closed when the writer's last acknowledgement is done (writer only)
	down    atomic.Pointer[error] // why Redis cannot be used now, or nil

	pubsub *goredis.PubSub
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// claimIdle is how long a queued order may sit read-but-unacknowledged by
// a dead consumer before another takes it over, and how often a writer
// looks for such orders. A dead writer on this machine is known at once
// (goneHere); one elsewhere once its heartbeat has lapsed (aliveFor).
const claimIdle = time.Second

// NewReserve starts this process's writer and its listener for commits.
// Close stops them.
func NewReserve(ctx context.Context, c *Client, store shop.Store, prefix string, maxBatch int, log *slog.Logger) (*Reserve, error) {
	host, _ := os.Hostname()
	rdb := c.rdb
	// The writer reads and acknowledges the queue over connections of its
	// own: in a crowd, buyers queue by the thousand for the shared pool,
	// and the commit they all wait for must not queue behind them. It
	// reads over one while it acknowledges over another, and the probe
	// and the heartbeat need a third.
	wopt := *rdb.Options()
	wopt.PoolSize, wopt.MinIdleConns = 3, 2
	// The reserve script is sent once: go-redis would send it again after
	// a lost connection or a read timeout, when Redis may have run it
	// already, and reserve a keyless order twice.
	sopt := *rdb.Options()
	sopt.MaxRetries = -1
	r := &Reserve{
		rdb: rdb, sdb: goredis.NewClient(&sopt), wdb: goredis.NewClient(&wopt), store: store, prefix: prefix, log: log,
		stream:   prefix + "orders",
		channel:  prefix + "committed",
		consumer: consumerName(host, os.Getpid(), token()[:8]),
		maxBatch: int64(maxBatch),
		waiters:  make(map[string]*waiter),
		loaded:   make(map[int64]bool),
		soldOut:  make(map[int64]*soldOut),
		learning: make(map[int64]bool),
		restocks: make(map[int64]int64),
		pending:  make(chan *reservation, pendingLen),
	}
	err := rdb.XGroupCreateMkStream(ctx, r.stream, group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		r.wdb.Close()
		r.sdb.Close()
		return nil, err
	}
	r.pubsub = rdb.Subscribe(ctx, r.channel)
	if _, err := r.pubsub.Receive(ctx); err != nil { // wait for the subscription
		r.pubsub.Close()
		r.wdb.Close()
		r.sdb.Close()
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	if err := reserve.Load(ctx, rdb).Err(); err != nil {
		r.pubsub.Close()
		r.wdb.Close()
		cancel()
		return nil, err
	}
	r.wg.Add(4 + senders)
	go r.probe(bg)
	go r.listen()
	go r.write(bg)
	go r.heartbeat(bg)
	for range senders {
		go r.reserveLoop(bg)
	}
	return r, nil
}

func (*Reserve) Name() string { return "reserve" }

// Redis is pinged every probeEvery, each ping given pingTimeout, and taken
// for down only once pings have failed for downAfter: in a crowd a process
// can be kept from the CPU for a second, and a healthy Redis must not be
// declared dead for it.
const (
	probeEvery  = 250 * time.Millisecond
	pingTimeout = time.Second
	downAfter   = 1500 * time.Millisecond
)

// probe pings Redis until ctx ends and keeps the answer for Ready.
func (r *Reserve) probe(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	lastOK := time.Now()
	var instance string // Redis's run_id: new at every start
	for {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		id, err := r.runID(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			lastOK = time.Now()
			r.down.Store(nil)
			if instance != "" && id != instance {
				// Redis restarted, and without persistence it lost the
				// queue: the orders this process's buyers wait for may be
				// gone with it. They hear 504 outcome_unknown now, not at
				// their deadline, and their retries, with the same keys,
				// reserve anew (or find the order, where it was stored
				// before).
				r.log.Warn("redis restarted; buyers waiting on queued orders retry", "run_id", id)
				r.staleAll()
			}
			instance = id
		case time.Since(lastOK) >= downAfter:
			err = fmt.Errorf("redis does not answer: %w", err)
			r.down.Store(&err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runID asks Redis for its run_id, which a restart changes.
func (r *Reserve) runID(ctx context.Context) (string, error) {
	info, err := r.wdb.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", errors.New("redis INFO has no run_id")
}

// staleAll answers every buyer waiting in this process after Redis lost
// its queue: the order may have been stored before, or never will be, so
// the outcome is unknown, and a retry with the same key finds out.
func (r *Reserve) staleAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.waiters {
		w.lost = true
		close(w.done)
		delete(r.waiters, id)
	}
}

// Ready implements shop.Readier: nil while Redis answers.
func (r *Reserve) Ready() error {
	if e := r.down.Load(); e != nil {
		return *e
	}
	return nil
}

// IndexesKeys marks Reserve as finding reused Idempotency-Keys itself (in
// Redis, and in the store when its batch commits), so the Service need not
// ask the store before every order.
func (*Reserve) IndexesKeys() {}

// soldOut is what this process knows of a product that Redis refused.
type soldOut struct {
	minQ int64 // the smallest quantity refused: stock is below it
	gen  int64 // the restock generation it was learnt in
	// keys holds every Idempotency-Key that reserved units of the product
	// up to the refusal (nil: too many to keep).
	keys map[string]struct{}
}

// KnownSoldOut answers from memory, with no round trip, whether o would be
// refused as sold out: Redis refused a quantity no larger than o's since
// the product's stock last came back, and o's key (if any) reserved none of
// it. Stock only falls between restocks, so a refusal stays true until the
// next one; a retry of an order that did reserve units is never refused
// here, because its key is among those read when the product sold out (no
// order of that quantity can reserve after it). The one staleness is a
// restock that this process has not yet heard of over pub/sub: for that
// moment, sold out is still said.
func (r *Reserve) KnownSoldOut(o shop.Order) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	so := r.soldOut[o.ProductID]
	if so == nil || o.Quantity < so.minQ {
		return false
	}
	if o.IdempotencyKey == "" {
		return true
	}
	if so.keys == nil {
		return false
	}
	_, reserved := so.keys[o.IdempotencyKey]
	return !reserved
}

// storeAgrees waits until the store holds fewer than q units of the
// product: the reservations Redis counted have committed. It polls, which
// costs a few reads once per product and process; after that the buyers
// are answered from memory. It fails with ErrTimeout when ctx ends first,
// as when the store is frozen: the buyer retries.
func (r *Reserve) storeAgrees(ctx context.Context, id, q int64) error {
	// The crowd that hears sold_out at the same moment waits for one poll.
	_, err, _ := r.agreeing.Do(strconv.FormatInt(id, 10)+"/"+strconv.FormatInt(q, 10), func() (any, error) {
		return nil, r.pollStore(ctx, id, q)
	})
	return err
}

func (r *Reserve) pollStore(ctx context.Context, id, q int64) error {
	pause := 500 * time.Microsecond
	for {
		p, err := r.store.Product(ctx, id)
		if err == nil && p.Stock < q {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-time.After(pause):
			pause = min(2*pause, 20*time.Millisecond)
		case <-ctx.Done():
			return shop.ErrTimeout
		}
	}
}

// learnSoldOut records that Redis refused q units of a product in restock
// generation gen, reading the keys that reserved units of it. One buyer
// per process does the reading; the rest were answered by Redis already.
func (r *Reserve) learnSoldOut(ctx context.Context, id, q, gen int64) {
	r.mu.Lock()
	if so := r.soldOut[id]; r.learning[id] || (so != nil && so.gen == gen && so.minQ <= q) || r.restocks[id] > gen {
		r.mu.Unlock()
		return
	}
	r.learning[id] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.learning, id)
		r.mu.Unlock()
	}()

	keysKey := productKey(r.prefix, "reserved", id)
	n, err := r.rdb.SCard(ctx, keysKey).Result()
	if err != nil {
		return
	}
	var members *goredis.StringSliceCmd
	pipe := r.rdb.TxPipeline()
	now := pipe.Get(ctx, productKey(r.prefix, "restocks", id))
	if n <= maxKnownKeys {
		members = pipe.SMembers(ctx, keysKey)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return
	}
	if g, _ := strconv.ParseInt(now.Val(), 10, 64); g != gen {
		return // stock came back since the refusal
	}
	so := &soldOut{minQ: q, gen: gen}
	if members != nil {
		so.keys = make(map[string]struct{}, len(members.Val()))
		for _, k := range members.Val() {
			so.keys[k] = struct{}{}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.restocks[id] > gen {
		return
	}
	if prev := r.soldOut[id]; prev != nil && prev.gen == gen && prev.minQ < q {
		so.minQ = prev.minQ
	}
	r.soldOut[id] = so
}

// restocked forgets that a product was sold out, on news of generation gen.
func (r *Reserve) restocked(id, gen int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restocks[id] = max(r.restocks[id], gen)
	if so := r.soldOut[id]; so != nil && so.gen < gen {
		delete(r.soldOut, id)
	}
}

// Buy implements shop.Strategy.
// The Service asks KnownSoldOut before it calls Buy, and the batch sender asks
// again just before sending, so Buy itself does not.
func (r *Reserve) Buy(ctx context.Context, o shop.Order) (shop.Order, error) {
	if r.Ready() != nil {
		return shop.Order{}, shop.ErrUnavailable
	}
	w := r.expect(o.ID)
	defer r.forget(o.ID, w)
	// A Redis that restarted empty has lost the product ("uninit"): it is
	// loaded again from the store and the reservation sent again, within
	// this request, so that a buyer (or a replay of an acknowledged key)
	// gets its answer rather than a quick 503.
	var res []string
	for tries := 0; ; tries++ {
		if err := r.ensureLoaded(ctx, o.ProductID); err != nil {
			return shop.Order{}, unavailableOr(err)
		}
		var err error
		if res, err = r.reserveOnce(ctx, o); err != nil {
			return shop.Order{}, err
		}
		if res[0] != "uninit" {
			break
		}
		r.mu.Lock()
		delete(r.loaded, o.ProductID) // Redis lost the key; load again
		r.mu.Unlock()
		if tries == 2 {
			return shop.Order{}, shop.ErrTimeout // nothing was reserved
		}
	}
	switch res[0] {
	case "ok":
	case "sold_out":
		// Redis itself refused (not memory). Redis counts a unit taken when
		// it is reserved, the store when its batch commits: wait for the
		// store to agree, or a read of the store a moment later would
		// contradict this answer. Then learn it before answering, so that
		// this process answers the next buyers from memory.
		if err := r.storeAgrees(ctx, o.ProductID, o.Quantity); err != nil {
			return shop.Order{}, err
		}
		if len(res) > 1 {
			if gen, err := strconv.ParseInt(res[1], 10, 64); err == nil {
				r.learnSoldOut(ctx, o.ProductID, o.Quantity, gen)
			}
		}
		return shop.Order{}, shop.ErrSoldOut
	case "limit":
		return shop.Order{}, shop.ErrLimitExceeded
	case "dup":
		return r.replay(ctx, o, res[1])
	}
	// The commit is announced; but an announcement published while this
	// process's subscription was down (Redis restarting) never comes, so
	// a keyed order still unanswered after a second is looked for in the
	// store, once a second: stored, it is the answer.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-w.done:
			if w.rejected {
				return shop.Order{}, shop.ErrDuplicateKey // the Service finds the stored order
			}
			if err := w.notStored(); err != nil {
				return shop.Order{}, err
			}
			return o, nil
		case <-ctx.Done():
			return shop.Order{}, shop.ErrOutcomeUnknown // queued: it may yet commit
		case <-tick.C:
			if o.IdempotencyKey == "" {
				continue
			}
			got, err := r.store.OrderByKey(ctx, o.IdempotencyKey)
			switch {
			case err != nil:
			case got.ID == o.ID:
				return o, nil
			default:
				return shop.Order{}, shop.ErrDuplicateKey // a twin's order holds the key
			}
		}
	}
}

// reservation is a buyer's place in a run of the reserve script, waiting
// for a batch sender to carry it.
type reservation struct {
	ctx  context.Context
	o    shop.Order
	res  []string // the script's answer, or
	err  error    // why there is none; both set before done is closed
	done chan struct{}
}

// Reservations are sent in batches: each of senders goroutines takes
// whatever buyers are waiting, up to maxReservations, and reserves for all
// of them with one run of the reserve script. A crowd then costs Redis one
// script run, and this process two system calls, per batch rather than per
// buyer, and no buyer holds a pooled connection while it waits.
const (
	senders         = 4
	maxReservations = 256
	pendingLen      = 1 << 16
)

// reserveLoop is one batch sender; it runs until ctx ends.
func (r *Reserve) reserveLoop(ctx context.Context) {
	defer r.wg.Done()
	batch := make([]*reservation, 0, maxReservations)
	for {
		batch = batch[:0]
		select {
		case rv := <-r.pending:
			batch = append(batch, rv)
		case <-ctx.Done():
			return
		}
	fill:
		for len(batch) < maxReservations {
			select {
			case rv := <-r.pending:
				batch = append(batch, rv)
			default:
				break fill
			}
		}
		r.reserveBatch(ctx, batch)
	}
}

// reserveBatch answers a batch of reservations. Before a buyer's order is
// sent, memory is asked again: buyers that queued before this process
// learnt that their product sold out are answered without Redis. An error
// running the script is every sent buyer's answer: whether or not their
// orders were reserved, a retry with the same key finds out.
func (r *Reserve) reserveBatch(ctx context.Context, batch []*reservation) {
	sent := make([]*reservation, 0, len(batch))
	keys := make([]string, 1, 1+reserveKeys*len(batch))
	keys[0] = r.stream
	args := make([]any, 0, reserveArgs*len(batch))
	for _, rv := range batch {
		switch {
		case rv.ctx.Err() != nil:
			rv.err = shop.ErrTimeout
			close(rv.done)
		case r.KnownSoldOut(rv.o):
			rv.res = []string{"sold_out"}
			close(rv.done)
		default:
			sent = append(sent, rv)
			keys = r.appendReserveKeys(keys, rv.o)
			args = appendReserveArgs(args, rv.o)
		}
	}
	if len(sent) == 0 {
		return
	}
	// Run sends the script's hash and, if Redis lost its scripts (a
	// restart), the script itself.
	res, err := reserve.Run(ctx, r.sdb, keys, args...).StringSlice()
	if err == nil && len(res) != 2*len(sent) {
		err = fmt.Errorf("the reserve script answered %d values for %d orders", len(res), len(sent))
	}
	for i, rv := range sent {
		if err != nil {
			rv.err = err
		} else if rv.res = res[2*i : 2*i+2]; rv.res[1] == "" {
			rv.res = rv.res[:1]
		}
		close(rv.done)
	}
}

// The reserve script's keys and arguments per order.
const reserveKeys, reserveArgs = 7, 7

func (r *Reserve) appendReserveKeys(keys []string, o shop.Order) []string {
	return append(keys,
		productKey(r.prefix, "stock", o.ProductID),
		productKey(r.prefix, "users", o.ProductID),
		productKey(r.prefix, "limit", o.ProductID),
		r.prefix+"idem:"+o.IdempotencyKey,
		productKey(r.prefix, "reserved", o.ProductID),
		productKey(r.prefix, "restocks", o.ProductID),
		productKey(r.prefix, "epoch", o.ProductID),
	)
}

func appendReserveArgs(args []any, o shop.Order) []any {
	return append(args, o.Quantity, o.UserID, o.ID, o.RequestHash, o.ProductID, o.IdempotencyKey, o.CreatedAt.UnixNano())
}

// replay answers a reused Idempotency-Key with the earlier order once that
// order is in the store.
func (r *Reserve) replay(ctx context.Context, o shop.Order, prev string) (shop.Order, error) {
	parts := strings.Split(prev, "\n")
	if len(parts) != 3 {
		return shop.Order{}, errors.New("malformed idempotency record in redis")
	}
	// Wait for the earlier order's commit to be announced rather than
	// poll the store: a crowd of retries polling would take the store's
	// connections from the very commit they wait for. The store is asked
	// once before (the commit may be long done) and once a second after,
	// in case the announcement came before this process listened.
	w := r.expect(parts[0])
	defer r.forget(parts[0], w)
	announced := w.done
	for {
		got, err := r.store.OrderByKey(ctx, o.IdempotencyKey)
		if err == nil {
			return got, shop.ErrDuplicateKey
		}
		if shop.ErrorCode(err) != shop.CodeNotFound {
			return shop.Order{}, timeoutOr(ctx, err)
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return shop.Order{}, shop.ErrOutcomeUnknown // the twin may yet commit
		case <-announced:
			t.Stop()
			// The earlier order was not stored: its buyer's answer is the
			// twin's. Stored, the next look-up finds it; a closed channel
			// is not waited on again.
			if err := w.notStored(); err != nil {
				return shop.Order{}, err
			}
			announced = nil
		case <-t.C:
		}
	}
}

// reserveOnce hands o to the batch sender and waits for the script's
// answer for it.
func (r *Reserve) reserveOnce(ctx context.Context, o shop.Order) ([]string, error) {
	rv := &reservation{ctx: ctx, o: o, done: make(chan struct{})}
	select {
	case r.pending <- rv:
	default:
		return nil, shop.ErrOverloaded
	}
	select {
	case <-rv.done:
	case <-ctx.Done():
		// The reservation may still be made: the buyer's retry with its
		// key finds the order.
		return nil, shop.ErrOutcomeUnknown
	}
	if rv.err != nil {
		return nil, sentOr(rv.err)
	}
	return rv.res, nil
}

// sentOr reports a failed run of the reserve script: as
// shop.ErrUnavailable (a 503 the buyer may retry) when it failed before
// anything reached Redis, and as shop.ErrOutcomeUnknown otherwise (a lost
// connection or a timeout after the script was sent: Redis may have run
// it, and its order may yet be committed).
func sentOr(err error) error {
	var oe *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, goredis.ErrClosed) || errors.Is(err, goredis.ErrPoolTimeout) ||
		(errors.As(err, &oe) && oe.Op == "dial") {
		return shop.ErrUnavailable
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return shop.ErrOutcomeUnknown
	}
	return err
}

// unavailableOr reports Redis being unreachable as shop.ErrUnavailable (a
// 503 the buyer may retry), and any other error as it is.
func unavailableOr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF) || errors.Is(err, goredis.ErrClosed) ||
		errors.Is(err, goredis.ErrPoolTimeout) {
		return shop.ErrUnavailable
	}
	return err
}

// timeoutOr reports a store error after the buyer's deadline as an
// unknown outcome: the order it was about may yet be stored.
func timeoutOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return shop.ErrOutcomeUnknown
	}
	return err
}

func (r *Reserve) ensureLoaded(ctx context.Context, id int64) error {
	r.mu.Lock()
	ok := r.loaded[id]
	r.mu.Unlock()
	if ok {
		return nil
	}
	// The first buyers of a product arrive together; one of them reads the
	// store for all.
	_, err, _ := r.seeding.Do(strconv.FormatInt(id, 10), func() (any, error) {
		return nil, r.seed(ctx, id)
	})
	return err
}

// seed loads a product from the store into Redis, if Redis does not hold
// it: at first, or after Redis lost it. The store moves the product into a
// new reservation epoch and reads it once every commit of the older epoch
// has finished, so the stock written here counts each of them exactly once
// and the orders still queued from before are refused as stale.
//
// One process seeds at a time, under a lock in Redis: processes that find
// the product missing together (every worker at a cold start, or after
// Redis lost it) must not each move the epoch on, or the orders reserved
// under the first reload would be refused as stale by the second. The
// others wait until the product is there; a lock whose holder died
// lapses after seedLock.
func (r *Reserve) seed(ctx context.Context, id int64) error {
	stockKey, lockKey := productKey(r.prefix, "stock", id), productKey(r.prefix, "seeding", id)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		have, err := r.rdb.Exists(ctx, stockKey).Result()
		if err != nil {
			return err
		}
		if have == 1 {
			break
		}
		tok := token()
		got, err := r.rdb.SetNX(ctx, lockKey, tok, seedLock).Result()
		if err != nil {
			return err
		}
		if got {
			err := r.reload(ctx, id)
			release.Run(context.WithoutCancel(ctx), r.rdb, []string{lockKey}, tok)
			if err != nil {
				return err
			}
			break
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.loaded[id] = true
	r.mu.Unlock()
	return nil
}

// seedLock bounds how long a seeding process holds the others off.
const seedLock = 10 * time.Second

// reload moves the product to a new epoch in the store and writes what it
// read into Redis, unless another process did meanwhile.
func (r *Reserve) reload(ctx context.Context, id int64) error {
	if have, err := r.rdb.Exists(ctx, productKey(r.prefix, "stock", id)).Result(); err != nil || have == 1 {
		return err // seeded by the lock's previous holder
	}
	rs, err := r.store.BeginReservations(ctx, id)
	if err != nil {
		return err
	}
	if err := loadStart(ctx, r.rdb, r.prefix, id, rs); err != nil {
		return err
	}
	r.log.Info("reservations loaded from the store", "product", id, "stock", rs.Product.Stock, "epoch", rs.Epoch)
	return nil
}

// KeysComplete marks Reserve as knowing every Idempotency-Key that bought
// a product (Redis holds the keys of orders reserved since the product was
// seeded, and seeding copies those stored before): a sold_out from Redis
// needs no look-up of the key in the store.
func (*Reserve) KeysComplete() {}

// waiter is a buyer waiting for its order's batch.
type waiter struct {
	done     chan struct{}
	rejected bool // set before done is closed
	refused  bool // likewise: the store had no stock for it
	limited  bool // likewise: the store's per-user limit refused it
	stale    bool // likewise: reserved before Redis was rebuilt; not stored
	failed   bool // likewise: it failed every commit (dead-lettered)
	lost     bool // Redis restarted while it waited: stored or not, nobody here knows
	refs     int  // buyers waiting on it, under Reserve.mu
}

// notStored is what the buyer of an announced order hears when the order
// was not stored (rejected aside: its key's stored order is the answer),
// or nil.
func (w *waiter) notStored() error {
	switch {
	case w.refused:
		return shop.ErrSoldOut
	case w.limited:
		return shop.ErrLimitExceeded
	case w.stale:
		return shop.ErrUnavailable
	case w.lost:
		return shop.ErrOutcomeUnknown
	case w.failed:
		return errors.New("the order failed every commit and was moved to the dead-letter stream")
	}
	return nil
}

// expect returns the waiter for order id, shared by the order's buyer and
// any replay of its key waiting in this process.
func (r *Reserve) expect(id string) *waiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiters[id]
	if w == nil {
		w = &waiter{done: make(chan struct{})}
		r.waiters[id] = w
	}
	w.refs++
	return w
}

// forget drops one interest in w; the last one removes it.
func (r *Reserve) forget(id string, w *waiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.refs--; w.refs == 0 && r.waiters[id] == w {
		delete(r.waiters, id)
	}
}

// listen wakes the buyers whose orders any process has committed.
func (r *Reserve) listen() {
	defer r.wg.Done()
	for msg := range r.pubsub.Channel() {
		if rest, ok := strings.CutPrefix(msg.Payload, "restock:"); ok {
			id, gen, _ := strings.Cut(rest, ":")
			p, err1 := strconv.ParseInt(id, 10, 64)
			g, err2 := strconv.ParseInt(gen, 10, 64)
			if err1 == nil && err2 == nil {
				r.restocked(p, g)
			}
			continue
		}
		r.wake(strings.FieldsSeq(msg.Payload))
	}
}

// wake answers the buyers waiting in this process for the announced
// orders: each name an order id, marked with its outcome when it was not
// stored as placed (see commit). A name nobody waits for is passed over.
func (r *Reserve) wake(names iter.Seq[string]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range names {
		var mark byte
		if id[0] == '!' || id[0] == '~' || id[0] == '^' || id[0] == 'x' || id[0] == '?' {
			mark, id = id[0], id[1:]
		}
		if w, ok := r.waiters[id]; ok {
			w.rejected, w.refused, w.limited, w.failed, w.stale = mark == '!', mark == '~', mark == '^', mark == 'x', mark == '?'
			close(w.done)
			delete(r.waiters, id)
		}
	}
}

// write is this process's member of the consumer group.
func (r *Reserve) write(ctx context.Context) {
	defer r.wg.Done()
	defer r.acked()
	claimAt := time.Now()
	for ctx.Err() == nil {
		if time.Since(claimAt) > claimIdle {
			claimAt = time.Now()
			// An entry committed but not yet acknowledged is pending too:
			// it must not be taken for one whose commit failed.
			r.acked()
			retry, dead := r.claimStale(ctx)
			if len(dead) > 0 {
				r.deadLetter(ctx, dead)
			}
			if len(retry) > 0 {
				r.commitSplit(ctx, retry)
				continue
			}
		}
		var msgs []goredis.XMessage
		{
			streams, err := r.wdb.XReadGroup(ctx, &goredis.XReadGroupArgs{
				Group: group, Consumer: r.consumer, Streams: []string{r.stream, ">"}, Count: r.maxBatch, Block: 200 * time.Millisecond,
			}).Result()
			if err != nil {
				switch {
				case errors.Is(err, goredis.Nil) || ctx.Err() != nil:
				case goredis.HasErrorPrefix(err, "NOGROUP"):
					// Redis lost the stream and its group (a restart
					// without persistence): make them again and go on.
					// What was queued is gone; its buyers time out and
					// their retries reserve anew against stock reloaded
					// from the store.
					r.log.Warn("order queue lost; recreating it", "stream", r.stream)
					if err := r.wdb.XGroupCreateMkStream(ctx, r.stream, group, "0").Err(); err != nil && !goredis.HasErrorPrefix(err, "BUSYGROUP") {
						r.log.Error("recreate order queue", "err", err)
						time.Sleep(100 * time.Millisecond)
					}
				default:
					r.log.Error("read order queue", "err", err)
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			msgs = streams[0].Messages
		}
		r.commit(ctx, msgs, shop.CommitGuarded)
	}
}

// aliveFor is how long a writer's heartbeat lasts; it is renewed every
// aliveEvery. A writer whose heartbeat has lapsed is taken for dead.
const (
	aliveFor   = 10 * time.Second
	aliveEvery = time.Second
)

func (r *Reserve) aliveKey(consumer string) string { return r.prefix + "alive:" + consumer }

// heartbeat says this writer is alive until ctx ends.
func (r *Reserve) heartbeat(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(aliveEvery)
	defer t.Stop()
	for {
		r.wdb.Set(ctx, r.aliveKey(r.consumer), 1, aliveFor)
		select {
		case <-ctx.Done():
			r.wdb.Del(context.WithoutCancel(ctx), r.aliveKey(r.consumer))
			return
		case <-t.C:
		}
	}
}

// claimStale takes the queued orders that were read but never committed:
// entries pending longer than claimIdle whose consumer is this process (its
// one writer is here, not committing, so its commit failed), has no
// heartbeat (dead), or was a process on this machine that has exited. A writer that is merely slow (a crowd can keep one from
// the CPU for seconds) keeps its entries, so no batch is committed twice
// for nothing. Entries delivered maxDeliveries times already go to the
// dead-letter stream instead of coming back.
func (r *Reserve) claimStale(ctx context.Context) (retry, dead []goredis.XMessage) {
	pending, err := r.wdb.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: r.stream, Group: group, Idle: claimIdle, Start: "-", End: "+", Count: r.maxBatch,
	}).Result()
	if err != nil || len(pending) == 0 {
		return nil, nil
	}
	var others []string
	for _, p := range pending {
		if p.Consumer != r.consumer && !slices.Contains(others, p.Consumer) {
			others = append(others, p.Consumer)
		}
	}
	var alive []any
	if len(others) > 0 {
		keys := make([]string, len(others))
		for i, c := range others {
			keys[i] = r.aliveKey(c)
		}
		if alive, err = r.wdb.MGet(ctx, keys...).Result(); err != nil {
			return nil, nil
		}
	}
	var stale []string
	deliveries := map[string]int64{}
	for _, p := range pending {
		if i := slices.Index(others, p.Consumer); i < 0 || alive[i] == nil || goneHere(p.Consumer) {
			stale = append(stale, p.ID)
			deliveries[p.ID] = p.RetryCount
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	msgs, err := r.wdb.XClaim(ctx, &goredis.XClaimArgs{
		Stream: r.stream, Group: group, Consumer: r.consumer, MinIdle: claimIdle, Messages: stale,
	}).Result()
	if err != nil {
		return nil, nil
	}
	for _, m := range msgs {
		if deliveries[m.ID] >= maxDeliveries {
			dead = append(dead, m)
		} else {
			retry = append(retry, m)
		}
	}
	return retry, dead
}

// maxDeliveries is how many times a queued order is tried before it goes
// to the dead-letter stream: an order the store refuses every time (data
// it cannot hold) must not be retried forever, nor hold up others.
const maxDeliveries = 5

// commitSplit commits entries that failed before, one attempt at a time,
// splitting the batch on any failure, so that the one order that fails
// stays behind alone and every other is committed.
func (r *Reserve) commitSplit(ctx context.Context, msgs []goredis.XMessage) {
	if err := r.commit(ctx, msgs, shop.CommitGuardedOnce); err == nil || len(msgs) == 1 {
		return
	}
	r.commitSplit(ctx, msgs[:len(msgs)/2])
	r.commitSplit(ctx, msgs[len(msgs)/2:])
}

// deadLetter moves entries that failed maxDeliveries times to the stream
// prefix+"dead", for an operator to read, gives their units back, and
// tells their buyers (if any still wait) that the order failed.
func (r *Reserve) deadLetter(ctx context.Context, msgs []goredis.XMessage) {
	pipe := r.wdb.TxPipeline()
	names := make([]string, 0, len(msgs))
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		ids = append(ids, m.ID)
		pipe.XAdd(ctx, &goredis.XAddArgs{Stream: r.prefix + "dead", Values: m.Values})
		o, err := decodeEntry(m.Values)
		if err != nil {
			continue
		}
		names = append(names, "x"+o.ID)
		giveBack.Eval(ctx, pipe, []string{productKey(r.prefix, "stock", o.ProductID), productKey(r.prefix, "users", o.ProductID),
			productKey(r.prefix, "restocks", o.ProductID), productKey(r.prefix, "limit", o.ProductID)}, o.Quantity, o.UserID, r.channel, o.ProductID)
		if o.IdempotencyKey != "" {
			pipe.Del(ctx, r.prefix+"idem:"+o.IdempotencyKey)
		}
	}
	pipe.XAck(ctx, r.stream, group, ids...)
	pipe.XDel(ctx, r.stream, ids...)
	if len(names) > 0 {
		pipe.Publish(ctx, r.channel, strings.Join(names, " "))
	}
	if _, err := pipe.Exec(context.WithoutCancel(ctx)); err != nil {
		r.log.Error("move orders to the dead-letter stream", "err", err)
		return
	}
	r.log.Error("orders failed every commit; moved to the dead-letter stream, units given back", "orders", len(msgs), "stream", r.prefix+"dead")
}

// commit commits a batch read from the stream with commitFn and, once it is
// stored, acknowledges it and announces the outcome of each order. On an
// error the entries stay pending, to be claimed again.
func (r *Reserve) commit(ctx context.Context, msgs []goredis.XMessage,
	commitFn func(shop.Store, []shop.Order) (c shop.Committed, refused []string, err error)) error {
	orders := make([]shop.Order, 0, len(msgs))
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		o, err := decodeEntry(m.Values)
		if err != nil {
			r.log.Error("drop malformed queue entry", "entry", m.ID, "err", err)
		} else {
			orders = append(orders, o)
		}
		ids = append(ids, m.ID)
	}
	c, refused, err := commitFn(r.store, orders)
	if err != nil {
		// Left unacknowledged: claimed again after claimIdle.
		r.log.Error("commit orders", "orders", len(orders), "err", err)
		return err
	}
	// The announcement names each committed order; a rejected one (its key
	// belongs to an older stored order) is marked with "!" and its units go
	// back to Redis. The store refuses an order when Redis believed in more
	// than the store holds (after a fault): more stock, or more of the
	// user's allowance. Which, the store's stock says: if it still holds
	// the units, the limit refused it ("^": its buyer hears
	// limit_exceeded, and the units go back to Redis); else the stock did
	// ("~": its buyer hears sold_out, its user gets the allowance back,
	// and the stock Redis believed in stays taken). A stale order ("?",
	// reserved before Redis was rebuilt from the store) was not counted
	// by the rebuild: nothing goes back, its key is forgotten, and its
	// buyer hears 503 and reserves anew.
	names := make([]string, len(orders))
	pipe := r.wdb.TxPipeline()
	for i, o := range orders {
		names[i] = o.ID
		switch {
		case slices.Contains(c.Stale, o.ID):
			names[i] = "?" + o.ID
			if o.IdempotencyKey != "" {
				forgetKey.Eval(ctx, pipe, []string{r.prefix + "idem:" + o.IdempotencyKey, productKey(r.prefix, "reserved", o.ProductID)}, o.ID, o.IdempotencyKey)
			}
		case slices.Contains(c.Rejected, o.ID):
			names[i] = "!" + o.ID
			giveBack.Eval(ctx, pipe, []string{productKey(r.prefix, "stock", o.ProductID), productKey(r.prefix, "users", o.ProductID),
				productKey(r.prefix, "restocks", o.ProductID), productKey(r.prefix, "limit", o.ProductID)}, o.Quantity, o.UserID, r.channel, o.ProductID)
		case slices.Contains(refused, o.ID):
			held, err := shop.StoreHolds(ctx, r.store, o)
			if err != nil {
				// Left unacknowledged: committed again (and refused
				// again) once the store answers.
				r.log.Error("read the stock of a refused order", "err", err)
				return err
			}
			if held {
				names[i] = "^" + o.ID
				giveBack.Eval(ctx, pipe, []string{productKey(r.prefix, "stock", o.ProductID), productKey(r.prefix, "users", o.ProductID),
					productKey(r.prefix, "restocks", o.ProductID), productKey(r.prefix, "limit", o.ProductID)}, o.Quantity, o.UserID, r.channel, o.ProductID)
			} else {
				names[i] = "~" + o.ID
				giveAllowance.Eval(ctx, pipe, []string{productKey(r.prefix, "users", o.ProductID), productKey(r.prefix, "limit", o.ProductID)}, o.Quantity, o.UserID)
			}
		}
	}
	// The batch is stored: this process's own buyers are answered now,
	// not after the announcement's round trip through Redis, and the
	// acknowledgement goes while the writer reads the next batch. An
	// entry whose acknowledgement is lost is committed again later, which
	// stores nothing twice.
	r.wake(slices.Values(names))
	pipe.XAck(ctx, r.stream, group, ids...)
	pipe.XDel(ctx, r.stream, ids...)
	pipe.Publish(ctx, r.channel, strings.Join(names, " "))
	r.ack(context.WithoutCancel(ctx), pipe)
	return nil
}

// ack executes a committed batch's acknowledgement on its own goroutine,
// after the one before it: one at a time, in order. Only the writer calls
// it, and acked.
func (r *Reserve) ack(ctx context.Context, pipe goredis.Pipeliner) {
	r.acked()
	done := make(chan struct{})
	r.acking = done
	go func() {
		defer close(done)
		if _, err := pipe.Exec(ctx); err != nil {
			r.log.Error("acknowledge orders", "err", err)
		}
	}()
}

// acked waits for the writer's last acknowledgement to be done.
func (r *Reserve) acked() {
	if r.acking != nil {
		<-r.acking
		r.acking = nil
	}
}

func decodeEntry(v map[string]any) (shop.Order, error) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	num := func(k string) (int64, error) { return strconv.ParseInt(str(k), 10, 64) }
	p, err1 := num("p")
	q, err2 := num("q")
	t, err3 := num("t")
	if err := errors.Join(err1, err2, err3); err != nil || str("id") == "" {
		return shop.Order{}, errors.Join(errors.New("bad order entry"), err)
	}
	e, _ := num("e") // absent from entries queued before epochs: 0, unfenced
	return shop.Order{
		ID: str("id"), ProductID: p, UserID: str("u"), Quantity: q,
		IdempotencyKey: str("k"), RequestHash: str("h"), CreatedAt: time.Unix(0, t).UTC(), Epoch: e,
	}, nil
}

// Close stops the writer and the listener. Orders still queued stay in the
// stream for the next writer.
func (r *Reserve) Close() error {
	r.cancel()
	err := r.pubsub.Close()
	r.wg.Wait()
	return errors.Join(err, r.wdb.Close(), r.sdb.Close())
}
