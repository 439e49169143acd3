-- The reservation epoch of each product: BeginReservations moves it on
-- when a reservation system (Redis) is rebuilt from the store, and a group
-- commit refuses orders reserved in an older one.
ALTER TABLE products ADD COLUMN reserve_epoch INTEGER NOT NULL DEFAULT 0;
