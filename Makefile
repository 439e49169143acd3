# The two commands a new user needs: `make run` and `make test`.
.PHONY: run test build bench

run:
	go run ./cmd/stampede $(ARGS)

test:
	./scripts/test.sh

build:
	go build -o stampede ./cmd/stampede

bench:
	./bench/shop.sh
