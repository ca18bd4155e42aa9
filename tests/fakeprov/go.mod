module herald.test/fakeprov

go 1.19
