typedef int csv_reader_placeholder_;
