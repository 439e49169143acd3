# The two commands a new user needs: `make run` and `make test`.
.PHONY: run test build bench

# make run starts the lab; ARGS picks another subcommand or flags:
# make run ARGS="shop --strategy naive"
ARGS ?= lab
run:
	go run ./cmd/stampede $(ARGS)

test:
	./scripts/test.sh

build:
	go build -buildvcs=auto -o stampede ./cmd/stampede

bench:
	./bench/shop.sh
